"""The HTTP edge over real sockets against a real service process: slow and greedy
clients are shed on time while the service keeps answering."""

from __future__ import annotations

import contextlib
import os
import re
import select
import selectors
import socket
import time
from collections.abc import Iterator

import pytest

from meridian_testing.process import RunningService, python_command, running_service, wait_until

SERVICE_CODE = """
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from meridian_chassis import ServiceSpec, run

async def echo(request):
    return PlainTextResponse(str(len(await request.body())))

async def statement(request):
    return PlainTextResponse("x" * int(request.query_params["bytes"]))

run(ServiceSpec("edge-probe", frozenset(), [Route("/echo", echo, methods=["POST"]),
                                            Route("/statement", statement)]))
"""
HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 1.0
KEEPALIVE_TIMEOUT = 0.5
WRITE_TIMEOUT = 1.0
SLACK = 1.5  # timers, a loaded 2-CPU machine
EDGE_ENV = {
    "HTTP_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
    "HTTP_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
    "HTTP_KEEPALIVE_TIMEOUT_SECONDS": str(KEEPALIVE_TIMEOUT),
    "HTTP_WRITE_TIMEOUT_SECONDS": str(WRITE_TIMEOUT),
    "HTTP_MAX_HEADER_BYTES": "4096",
    "HTTP_MAX_BODY_BYTES": "1024",
}


@pytest.fixture()
def service() -> Iterator[RunningService]:
    with running_service(python_command(SERVICE_CODE), EDGE_ENV) as running:
        yield running


def _connect(service: RunningService) -> socket.socket:
    return socket.create_connection(("127.0.0.1", service.port), timeout=10)


def _answer(sock: socket.socket, timeout: float = 10) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(timeout)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _live_status(service: RunningService) -> int:
    with _connect(service) as sock:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        return int(_answer(sock, 5).split(b" ", 2)[1])


def test_a_thousand_slow_clients_are_shed_on_time_while_liveness_answers(
    service: RunningService,
) -> None:
    pid = service.process.pid
    fds_before, rss_before = _open_fds(pid), _rss_kib(pid)
    slow: list[socket.socket] = []
    opened = time.monotonic()
    for n in range(1000):
        sock = socket.create_connection(("127.0.0.1", service.port), timeout=10)
        # A third send nothing, a third half a request line, a third a byte at a time.
        if n % 3 == 1:
            sock.sendall(b"GET /health/li")
        slow.append(sock)
    all_open = time.monotonic() - opened
    trickling = slow[2::3]
    # epoll, not select(): the test's own descriptors run past select's 1024.
    waiting = selectors.DefaultSelector()
    for sock in slow:
        waiting.register(sock, selectors.EVENT_READ)
    closed_at: list[float] = []
    live_checks: list[tuple[int, float]] = []
    peak_fds = peak_rss = 0
    request_line = b"GET /health/live HTTP/1.1\r\n"
    sent = 0
    while waiting.get_map() and time.monotonic() - opened < HEADER_TIMEOUT + all_open + 10:
        asked = time.monotonic()
        live_checks.append((_live_status(service), time.monotonic() - asked))
        peak_fds, peak_rss = max(peak_fds, _open_fds(pid)), max(peak_rss, _rss_kib(pid))
        if sent < len(request_line):
            for sock in trickling:  # one byte each every round: never a whole head
                with contextlib.suppress(OSError):  # shed already
                    sock.send(request_line[sent : sent + 1])
            sent += 1
        for key, _ in waiting.select(0.2):
            ready = key.fileobj
            assert isinstance(ready, socket.socket)
            try:
                data = ready.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data or data.endswith(b"Request Timeout\n"):
                closed_at.append(time.monotonic() - opened)
                waiting.unregister(ready)
    still_open = len(waiting.get_map())
    for sock in slow:
        sock.close()
    statuses = {status for status, _ in live_checks}
    slowest_live = max(seconds for _, seconds in live_checks)
    assert wait_until(lambda: _open_fds(pid) <= fds_before + 2, timeout=5)
    print(
        f"1000 slow clients connected in {all_open:.2f}s; all shed {max(closed_at):.2f}s"
        f" after the first connected (header timeout {HEADER_TIMEOUT:g}s);"
        f" /health/live answered {len(live_checks)} times, {sorted(statuses)},"
        f" slowest {slowest_live * 1000:.0f} ms; service fds {fds_before} -> peak {peak_fds}"
        f" -> {_open_fds(pid)}; RSS {rss_before / 1024:.1f} MiB -> peak {peak_rss / 1024:.1f}"
        f" MiB (+{(peak_rss - rss_before) / 1024:.1f})"
    )
    assert still_open == 0, f"{still_open} slow clients still connected"
    # This loop notices a close up to a round late (a round asks /health/live and /proc).
    assert max(closed_at) <= all_open + HEADER_TIMEOUT + 2 * SLACK
    assert statuses == {200}
    assert slowest_live < HEADER_TIMEOUT  # answered while they were all still held
    assert peak_fds >= fds_before + 900  # they really were held, until the deadline
    assert peak_rss - rss_before < 32 * 1024


def test_connections_beyond_the_cap_get_503_until_the_held_ones_are_shed() -> None:
    env = {**EDGE_ENV, "HTTP_MAX_CONNECTIONS": "20"}
    with running_service(python_command(SERVICE_CODE), env) as service:
        held = [_connect(service) for _ in range(20)]
        time.sleep(0.2)
        with _connect(service) as extra:
            refused = _answer(extra, 5)
        assert refused.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        assert b"retry-after: 1" in refused
        # The held connections sent nothing: shed at the header timeout, then room again.
        assert wait_until(lambda: _live_status(service) == 200, timeout=HEADER_TIMEOUT + SLACK)
        for sock in held:
            assert _answer(sock, 1) == b""
            sock.close()
        metrics = service.get("/metrics").text
    shed = dict(re.findall(r'^http_connections_shed_total\{reason="(\w+)"\} (\S+)$', metrics, re.M))
    # The 503 above, and any liveness probe refused while the 20 were still held.
    assert float(shed["connection_limit"]) >= 1
    assert float(shed["head_timeout"]) == 20


def test_a_request_line_a_byte_at_a_time_does_not_extend_the_deadline(
    service: RunningService,
) -> None:
    with _connect(service) as sock:
        started = time.monotonic()
        for byte in b"GET /health/live HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 100:
            try:
                sock.send(bytes([byte]))
            except OSError:
                break
            ready, _, _ = select.select([sock], [], [], 0.1)
            if ready:
                break
        answer = _answer(sock)
        shed_after = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert HEADER_TIMEOUT - 0.1 <= shed_after <= HEADER_TIMEOUT + SLACK


def test_a_silent_connection_is_closed_at_the_header_timeout(service: RunningService) -> None:
    with _connect(service) as sock:
        started = time.monotonic()
        assert _answer(sock) == b""
        assert HEADER_TIMEOUT - 0.1 <= time.monotonic() - started <= HEADER_TIMEOUT + SLACK


def test_an_idle_keep_alive_connection_is_closed_at_the_keep_alive_timeout(
    service: RunningService,
) -> None:
    with _connect(service) as sock:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: t\r\n\r\n")
        sock.settimeout(5)
        response = b""
        while not response.endswith(b'{"status":"alive"}'):  # head and body may come apart
            response += sock.recv(65536)
        assert response.startswith(b"HTTP/1.1 200 OK")
        answered = time.monotonic()
        assert _answer(sock) == b""
        idle = time.monotonic() - answered
    assert KEEPALIVE_TIMEOUT - 0.1 <= idle <= KEEPALIVE_TIMEOUT + SLACK


def test_a_slow_body_gets_408_at_the_body_timeout(service: RunningService) -> None:
    with _connect(service) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        started = time.monotonic()
        answer = _answer(sock)
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert BODY_TIMEOUT - 0.1 <= waited <= BODY_TIMEOUT + SLACK


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /health/live HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n", b"431"),
        (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2048\r\n\r\n" + b"a" * 100, b"413"),
        (
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"400\r\n"
            + b"a" * 1024
            + b"\r\n"
            + b"400\r\n"
            + b"a" * 1024
            + b"\r\n",
            b"413",
        ),
    ],
    ids=["head", "declared-body", "chunked-body"],
)
def test_oversized_requests_are_refused_before_the_application(
    service: RunningService, request_bytes: bytes, status: bytes
) -> None:
    with _connect(service) as sock:
        sock.sendall(request_bytes)
        answer = _answer(sock)
    assert answer.split(b" ", 2)[1] == status, answer[:200]
    assert b"connection: close" in answer


def test_requests_within_the_limits_are_served(service: RunningService) -> None:
    with _connect(service) as sock:
        body = b"a" * 1024
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1024\r\n\r\n" + body)
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        answer = _answer(sock)
    assert answer.count(b"HTTP/1.1 200 OK") == 2
    assert b"\r\n\r\n1024" in answer


def _shed_total(service: RunningService, reason: str) -> float:
    with _connect(service) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        metrics = _answer(sock, 5).decode()
    found = re.search(rf'^http_connections_shed_total{{reason="{reason}"}} (\S+)$', metrics, re.M)
    return float(found.group(1)) if found else 0.0


def test_a_client_that_stops_reading_is_cut_off_at_the_write_timeout(
    service: RunningService,
) -> None:
    # Far more than the socket buffers hold, so the server must wait for the client.
    size = 64 * 1024 * 1024
    with _connect(service) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(f"GET /statement?bytes={size} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        time.sleep(WRITE_TIMEOUT + SLACK)
        # Reset by now: the client gets at most what its own socket held, and the end.
        sock.settimeout(SLACK)
        received, reset, until = b"", False, time.monotonic() + SLACK
        try:
            while time.monotonic() < until and (chunk := sock.recv(65536)):
                received += chunk
        except ConnectionResetError:
            reset = True
    assert reset, f"still sending after the write timeout ({len(received)} bytes read)"
    assert len(received) < size
    assert _shed_total(service, "write_timeout") == 1
    assert _live_status(service) == 200


def test_a_client_that_reads_slowly_but_steadily_gets_everything(
    service: RunningService,
) -> None:
    size = 4 * 1024 * 1024
    with _connect(service) as sock:
        sock.sendall(
            f"GET /statement?bytes={size} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode()
        )
        sock.settimeout(10)
        received, started = b"", time.monotonic()
        # Longer in all than the write timeout, never a pause as long as it.
        while chunk := sock.recv(256 * 1024):
            received += chunk
            time.sleep(WRITE_TIMEOUT / 10)
    assert time.monotonic() - started > WRITE_TIMEOUT
    assert received.endswith(b"x" * 1024)
    assert len(received.split(b"\r\n\r\n", 1)[1]) == size
