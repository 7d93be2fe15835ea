"""Run a Meridian service as a real OS process and talk to it over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from meridian_chassis.config import DEPENDENCY_SETTINGS
from meridian_testing.servers import ServerError, free_port


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any
    text: str


def http_get(url: str, timeout: float = 5.0) -> Reply:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback URLs
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


@dataclass
class RunningService:
    process: subprocess.Popen[str]
    port: int

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str) -> Reply:
        return http_get(self.url(path))

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)


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
    )


@contextmanager
def running_service(
    argv: list[str], env: Mapping[str, str], timeout: float = 30.0
) -> Iterator[RunningService]:
    """Start a service on a free port and wait until its startup probe passes."""
    port = free_port()
    process = start_process(argv, {"PORT": str(port), "HOST": "127.0.0.1", **env})
    service = RunningService(process, port)
    try:
        if not wait_until(lambda: service.get("/health/startup").status == 200, timeout):
            process.kill()
            out, err = process.communicate()
            raise ServerError(f"service did not start within {timeout}s:\n{out}\n{err}")
        yield service
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
