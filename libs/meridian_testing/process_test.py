"""The service runner against real processes that write more than a pipe holds."""

from __future__ import annotations

import subprocess

import pytest

from meridian_testing.process import (
    MAX_LINE_CHARS,
    OutputTail,
    http_get,
    python_command,
    running_service,
)
from meridian_testing.servers import ServerError

PIPE_BUFFER_BYTES = 64 * 1024

# A real HTTP server that, per request to /log?lines=N, writes N lines of 100 bytes to
# stdout and to stderr before answering, and logs each request to stderr as well.
CHATTY_SERVICE = """
import os, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

class Handler(BaseHTTPRequestHandler):
    served = 0

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/log":
            request = Handler.served
            Handler.served += 1
            for line in range(int(parse_qs(url.query)["lines"][0])):
                text = f"request {request} line {line} ".ljust(99, ".")
                print(text, flush=True)
                print(text, file=sys.stderr, flush=True)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

ThreadingHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), Handler).serve_forever()
"""


def test_a_service_that_logs_more_than_a_pipe_holds_keeps_answering() -> None:
    requests, lines_per_request = 40, 100
    written_per_stream = requests * lines_per_request * 100
    assert written_per_stream > 4 * PIPE_BUFFER_BYTES
    with running_service(python_command(CHATTY_SERVICE), {}, output_lines=500) as service:
        for _ in range(requests):
            # An undrained pipe blocks the server's next print: this would time out.
            reply = http_get(service.url(f"/log?lines={lines_per_request}"), timeout=5)
            assert reply.text == "ok"
        service.terminate()
        exited = service.wait(timeout=10)

    stdout = exited.stdout.splitlines()
    assert len(stdout) == 500  # bounded: only the tail is kept
    assert stdout[0].startswith(f"request {requests - 5} line 0 ")
    assert stdout[-1].startswith(f"request {requests - 1} line {lines_per_request - 1} ")
    assert service.stdout.dropped == requests * lines_per_request - 500
    # stderr carries the same lines plus the server's access log, also drained.
    assert "GET /log?lines=100" in exited.stderr
    assert service.stderr.dropped > 0


def test_a_service_that_exits_before_starting_fails_with_its_last_lines() -> None:
    code = (
        "import sys\n"
        "for n in range(100): print(f'out {n}')\n"
        "print('cannot bind: the reason', file=sys.stderr)\n"
        "sys.exit(3)\n"
    )
    with pytest.raises(ServerError) as failure, running_service(python_command(code), {}):
        pass
    message = str(failure.value)
    assert "exited with 3 before its startup probe passed" in message
    assert "last 40 lines of stdout (60 earlier lines not shown)" in message
    assert "out 99" in message
    assert "out 59\n" not in message
    assert "cannot bind: the reason" in message


def test_a_line_longer_than_the_read_limit_is_kept_in_pieces() -> None:
    code = "import sys; sys.stdout.write('x' * 300_000)"
    process = subprocess.Popen(python_command(code), stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    tail = OutputTail(process.stdout, "stdout", max_lines=3)
    assert process.wait(timeout=10) == 0
    assert tail.join(timeout=10)
    assert [len(piece) for piece in tail.lines()] == [MAX_LINE_CHARS] * 2 + [
        300_000 - 4 * MAX_LINE_CHARS
    ]
    assert tail.dropped == 2
