"""Run a Meridian service as a real OS process and talk to it over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any

from meridian_chassis.config import DEPENDENCY_SETTINGS
from meridian_testing.servers import ServerError, free_port


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any
    text: str


def http_get(url: str, timeout: float = 5.0) -> Reply:
    return http_request("GET", url, timeout=timeout)


def http_request(method: str, url: str, body: bytes | None = None, timeout: float = 5.0) -> Reply:
    request = urllib.request.Request(url, data=body, method=method)  # noqa: S310 - loopback URLs
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            text = response.read().decode()
            status = int(response.status)
            content_type = response.headers.get("content-type", "")
    except urllib.error.HTTPError as error:
        text = error.read().decode()
        status = error.code
        content_type = error.headers.get("content-type", "")
    body = json.loads(text) if content_type.startswith("application/json") else None
    return Reply(status, body, text)


def wait_until(predicate: Any, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except OSError:
            pass
        time.sleep(interval)
    return False


# Enough for a whole short test run's log (tests parse it after SIGTERM), bounded so a
# service that logs under load for minutes cannot grow the test's memory without end.
OUTPUT_TAIL_LINES = 10_000
# A line longer than this is kept in pieces rather than read into memory whole.
MAX_LINE_CHARS = 64 * 1024
# How much of each stream a failure message quotes.
FAILURE_MESSAGE_LINES = 40


class OutputTail:
    """Reads a child's pipe to its end in a daemon thread and keeps its last lines.

    An undrained pipe fills at 64 KiB and the child then blocks on its next write, so
    a service that logs every request stalls under load unless something reads as it
    writes. `dropped` counts the lines that fell off the front of the tail.
    """

    def __init__(self, stream: IO[str], name: str, max_lines: int = OUTPUT_TAIL_LINES) -> None:
        self.name = name
        self.dropped = 0
        self._lines: deque[str] = deque(maxlen=max_lines)
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._drain, args=(stream,), name=f"drain-{name}", daemon=True
        )
        self._thread.start()

    def _drain(self, stream: IO[str]) -> None:
        with stream:
            for line in iter(lambda: stream.readline(MAX_LINE_CHARS), ""):
                with self._lock:
                    if len(self._lines) == self._lines.maxlen:
                        self.dropped += 1
                    self._lines.append(line)

    def join(self, timeout: float) -> bool:
        """Wait for the end of the stream; False if it is still open after `timeout`."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def lines(self) -> list[str]:
        with self._lock:
            return list(self._lines)

    def text(self) -> str:
        return "".join(self.lines())

    def last_lines(self, count: int = FAILURE_MESSAGE_LINES) -> str:
        """The end of the stream, for failure messages."""
        with self._lock:
            kept, dropped = list(self._lines), self.dropped
        lines = kept[-count:]
        if not lines:
            return f"(nothing on {self.name})"
        earlier = dropped + len(kept) - len(lines)
        header = f"last {len(lines)} lines of {self.name}"
        if earlier:
            header += f" ({earlier} earlier lines not shown)"
        return f"{header}:\n" + "".join(lines).rstrip("\n")


@dataclass(frozen=True)
class ExitedService:
    returncode: int
    stdout: str
    stderr: str


@dataclass
class RunningService:
    """A service process whose stdout and stderr are drained as it runs."""

    process: subprocess.Popen[str]
    port: int
    stdout: OutputTail = field(repr=False)
    stderr: OutputTail = field(repr=False)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str) -> Reply:
        return http_get(self.url(path))

    def request(self, method: str, path: str, body: bytes | None = None) -> Reply:
        return http_request(method, self.url(path), body)

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> ExitedService:
        """Wait for the process to exit and its output to end; its output so far."""
        returncode = self.process.wait(timeout)
        for tail in (self.stdout, self.stderr):
            # A grandchild that inherited the pipe can hold it open past the exit.
            tail.join(timeout=5)
        return ExitedService(returncode, self.stdout.text(), self.stderr.text())

    def failure_details(self) -> str:
        return f"{self.stdout.last_lines()}\n{self.stderr.last_lines()}"


def python_command(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def child_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """The child sees the same modules as this interpreter (Pants runs tests from a PEX)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PEX") and key not in DEPENDENCY_SETTINGS.values()
    }
    env["PYTHONPATH"] = os.pathsep.join(path for path in sys.path if path)
    env.update(extra)
    return env


def start_process(argv: list[str], env: Mapping[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        argv,
        env=child_environment(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A stray non-UTF-8 byte must not end the draining of the output.
        errors="replace",
    )


def drained(
    process: subprocess.Popen[str], port: int, output_lines: int = OUTPUT_TAIL_LINES
) -> RunningService:
    """Hands the process's pipes to drain threads; the Popen no longer reads them."""
    if process.stdout is None or process.stderr is None:
        raise ValueError("drained() needs a process started with stdout and stderr piped")
    stdout = OutputTail(process.stdout, "stdout", output_lines)
    stderr = OutputTail(process.stderr, "stderr", output_lines)
    # communicate() would race the drain threads for the same pipes.
    process.stdout = process.stderr = None
    return RunningService(process, port, stdout, stderr)


@contextmanager
def running_service(
    argv: list[str],
    env: Mapping[str, str],
    timeout: float = 30.0,
    output_lines: int = OUTPUT_TAIL_LINES,
) -> Iterator[RunningService]:
    """Start a service on a free port and wait until its startup probe passes.

    Its stdout and stderr are read as it writes them; the last `output_lines` lines of
    each are kept for the test and for failure messages.
    """
    port = free_port()
    process = start_process(argv, {"PORT": str(port), "HOST": "127.0.0.1", **env})
    service = drained(process, port, output_lines)

    def started() -> bool:
        if process.poll() is not None:
            exited = service.wait(timeout=10)
            raise ServerError(
                f"service exited with {exited.returncode} before its startup probe passed:\n"
                + service.failure_details()
            )
        return service.get("/health/startup").status == 200

    try:
        if not wait_until(started, timeout):
            process.kill()
            service.wait(timeout=10)
            raise ServerError(
                f"service did not start within {timeout}s:\n{service.failure_details()}"
            )
        yield service
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
