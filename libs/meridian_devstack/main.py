"""Start Meridian's local stack from processes.yaml; Ctrl-C stops everything cleanly."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from meridian_devstack.stack import Process, StackFileError, load_stack

DEFAULT_STACK = Path("deployments/local/processes.yaml")


class StackError(Exception):
    pass


def _stop_with_parent() -> None:
    """Linux: the child gets SIGTERM if the stack runner dies, so nothing is orphaned."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def _port_in_use(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


def preflight(processes: Sequence[Process]) -> None:
    """Refuse to start half a stack: report every missing build output and busy port."""
    problems = []
    for process in processes:
        program = process.cmd[1] if process.cmd[0].startswith("python") else process.cmd[0]
        if "/" in program and not Path(program).exists():
            problems.append(f"{process.name}: {program} does not exist; run `make build` first")
        if _port_in_use(process.port):
            problems.append(f"{process.name}: port {process.port} is already in use")
    if problems:
        raise StackError("cannot start the local stack:\n  " + "\n  ".join(problems))


def _ready(process: Process) -> bool:
    if process.ready_path is None:
        return _port_in_use(process.port)
    url = f"http://127.0.0.1:{process.port}{process.ready_path}"
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback only
            return int(response.status) == 200
    except (OSError, urllib.error.URLError):
        return False


def _relay(name: str, stream: Any, width: int) -> None:
    for line in stream:
        sys.stdout.write(f"{name:>{width}} | {line}")
        sys.stdout.flush()


class Stack:
    def __init__(self, processes: Sequence[Process], ready_timeout: float) -> None:
        self.processes = processes
        self.ready_timeout = ready_timeout
        self.running: list[tuple[Process, subprocess.Popen[str]]] = []
        self.width = max(len(process.name) for process in processes)

    def start(self, process: Process) -> float:
        started = time.monotonic()
        child = subprocess.Popen(
            list(process.cmd),
            env={**os.environ, **process.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # Ctrl-C reaches the stack, which stops children in order
            preexec_fn=_stop_with_parent,  # noqa: PLW1509 - only calls prctl
        )
        self.running.append((process, child))
        threading.Thread(
            target=_relay, args=(process.name, child.stdout, self.width), daemon=True
        ).start()
        while time.monotonic() - started < self.ready_timeout:
            if child.poll() is not None:
                raise StackError(
                    f"{process.name} exited with code {child.returncode} while starting"
                )
            if _ready(process):
                return time.monotonic() - started
            time.sleep(0.1)
        raise StackError(f"{process.name} was not ready within {self.ready_timeout:g}s")

    def crashed(self) -> Process | None:
        return next((process for process, child in self.running if child.poll() is not None), None)

    def stop(self) -> None:
        for process, child in reversed(self.running):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(15)
                except subprocess.TimeoutExpired:
                    print(f"{process.name} did not stop within 15s; killing it", file=sys.stderr)
                    child.kill()
                    child.wait()
        self.running.clear()


def _summary(timings: dict[str, float], processes: Sequence[Process]) -> str:
    lines = ["", "Meridian is running:"]
    for process in processes:
        scheme = "http" if process.ready_path else "tcp"
        url = f"{scheme}://127.0.0.1:{process.port}"
        health = f"{url}{process.ready_path}" if process.ready_path else url
        lines.append(f"  {process.name:<22} {health:<44} ready in {timings[process.name]:.2f}s")
    lines.append("Press Ctrl-C to stop everything.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("stack", nargs="?", type=Path, default=DEFAULT_STACK)
    parser.add_argument("--ready-timeout", type=float, default=60.0)
    parser.add_argument("--exit-when-ready", action="store_true", help="stop once all are ready")
    args = parser.parse_args(argv)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        processes = load_stack(args.stack)
        preflight(processes)
    except (StackFileError, StackError) as error:
        print(error, file=sys.stderr)
        return 1

    stack = Stack(processes, args.ready_timeout)
    try:
        timings = {}
        for process in processes:
            if stop.is_set():
                return 130
            timings[process.name] = stack.start(process)
        print(_summary(timings, processes), flush=True)
        while not args.exit_when_ready and not stop.wait(0.5):
            crashed = stack.crashed()
            if crashed is not None:
                raise StackError(f"{crashed.name} exited unexpectedly; stopping the stack")
    except StackError as error:
        print(error, file=sys.stderr)
        return 1
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
