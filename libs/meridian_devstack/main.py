"""Start Meridian's local stack from processes.yaml; Ctrl-C stops everything cleanly."""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from meridian_devstack.health import Readiness, check_readiness
from meridian_devstack.ports import describe_taken, port_accepts
from meridian_devstack.stack import Process, StackFileError, load_stack

DEFAULT_STACK = Path("deployments/local/processes.yaml")
TAIL_LINES = 20
# A normal start takes a few seconds: say nothing about it unless it takes longer.
WAITING_NOTE_SECONDS = 5.0


class StackError(Exception):
    pass


def _stop_with_parent() -> None:
    """Linux: the child gets SIGTERM if the stack runner dies, so nothing is orphaned."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def preflight(processes: Sequence[Process]) -> None:
    """Refuse to start half a stack: report every missing build output and busy port."""
    problems = []
    for process in processes:
        program = process.cmd[1] if process.cmd[0].startswith("python") else process.cmd[0]
        if "/" in program and not Path(program).exists():
            problems.append(f"{process.name}: {program} does not exist; run `make build` first")
        if port_accepts(process.port):
            problems.append(describe_taken(process.name, process.port))
    if problems:
        raise StackError("cannot start the local stack:\n  " + "\n  ".join(problems))


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def _exit_status(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{seconds:.1f}s"


@dataclass
class Running:
    """A started process, the tail of its output, and when it started and ended."""

    process: Process
    child: subprocess.Popen[str]
    started: float
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    ended: float | None = None
    relay_thread: threading.Thread | None = None
    check_errors: dict[str, str] = field(default_factory=dict)

    def relay(self, width: int) -> None:
        for line in self.child.stdout or ():
            self.tail.append(line.rstrip("\n"))
            self.note_readiness(line)
            sys.stdout.write(f"{self.process.name:>{width}} | {line}")
            sys.stdout.flush()

    def note_readiness(self, line: str) -> None:
        """/health/ready says which check fails; the service logs why."""
        if '"readiness check ' not in line:
            return
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            return
        if not isinstance(entry, dict):
            return
        check = str(entry.get("check"))
        if entry.get("message") == "readiness check failed":
            self.check_errors[check] = str(entry.get("error"))
        elif entry.get("message") == "readiness check passed":
            self.check_errors.pop(check, None)

    def exited(self) -> bool:
        if self.child.poll() is None:
            return False
        if self.ended is None:
            self.ended = time.monotonic()
        return True

    def last_lines(self) -> str:
        if self.relay_thread is not None and self.exited():
            self.relay_thread.join(2)  # its last lines are often the reason it exited
        lines = list(self.tail)
        if not lines:
            return f"  (no output from {self.process.name})"
        return f"  last {len(lines)} lines of {self.process.name}:\n" + _indent("\n".join(lines))


class Stack:
    def __init__(self, processes: Sequence[Process], ready_timeout: float) -> None:
        self.processes = processes
        self.ready_timeout = ready_timeout
        self.running: list[Running] = []
        self.stopped: list[Running] = []
        self.width = max(len(process.name) for process in processes)

    def launch(self, process: Process) -> Running:
        child = subprocess.Popen(
            list(process.cmd),
            env={**os.environ, **process.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # Ctrl-C reaches the stack, which stops children in order
            preexec_fn=_stop_with_parent,  # noqa: PLW1509 - only calls prctl
        )
        running = Running(process, child, time.monotonic())
        self.running.append(running)
        running.relay_thread = threading.Thread(
            target=running.relay, args=(self.width,), daemon=True
        )
        running.relay_thread.start()
        return running

    def start_all(self, stop: threading.Event) -> dict[str, float] | None:
        """Start every process at once, as a cluster does; return how long each took to be
        ready, or None if stopped first.

        A service needs its backing servers to be ready, not to start (its readiness
        checks them), so the services' own start-up overlaps the servers'.
        """
        waiting = [self.launch(process) for process in self.processes]
        timings: dict[str, float] = {}
        reasons: dict[str, tuple[str, float]] = {}
        while waiting:
            crashed = self.crashed()
            if crashed is not None:
                raise StackError(
                    f"{crashed.process.name} {_exit_status(crashed.child.returncode)} while "
                    f"starting\n{crashed.last_lines()}"
                )
            for running in list(waiting):
                process, waited = running.process, time.monotonic() - running.started
                readiness = check_readiness(process, running.check_errors)
                if readiness.ready:
                    timings[process.name] = waited
                    waiting.remove(running)
                elif waited >= self.ready_timeout:
                    raise StackError(self.not_ready_report(running, readiness))
                else:
                    self._say_why_waiting(process.name, readiness.reason, waited, reasons)
            if waiting and stop.wait(0.2):
                return None
        return timings

    @staticmethod
    def _say_why_waiting(
        name: str, reason: str, waited: float, said: dict[str, tuple[str, float]]
    ) -> None:
        """Say why a process is not ready yet once it has waited a while, and again when
        the reason changes, at most every few seconds."""
        last_reason, last_said = said.get(name, ("", 0.0))
        if reason != last_reason and waited - last_said >= WAITING_NOTE_SECONDS:
            said[name] = (reason, waited)
            print(f"waiting for {name}:\n{_indent(reason)}", flush=True)

    def not_ready_report(self, running: Running, readiness: Readiness) -> str:
        lines = [
            f"{running.process.name} was not ready within {self.ready_timeout:g}s:",
            _indent(readiness.reason or "(no reason given)"),
            running.last_lines(),
        ]
        lines += [
            f"{other.process.name} {_exit_status(other.child.returncode)}:\n{other.last_lines()}"
            for other in self.running
            if other is not running and other.exited()
        ]
        return "\n".join(lines)

    def crashed(self) -> Running | None:
        return next((running for running in self.running if running.exited()), None)

    def stop(self) -> None:
        for running in reversed(self.running):
            if running.child.poll() is None:
                running.child.send_signal(signal.SIGTERM)
                try:
                    running.child.wait(15)
                except subprocess.TimeoutExpired:
                    print(
                        f"{running.process.name} did not stop within 15s; killing it",
                        file=sys.stderr,
                    )
                    running.child.kill()
                    running.child.wait()
            running.exited()
        self.stopped, self.running = self.running, []

    def summary(self, started: float) -> str:
        lines = [f"Meridian ran for {_duration(time.monotonic() - started)}:"]
        for running in self.stopped:
            ran = (running.ended or time.monotonic()) - running.started
            lines.append(
                f"  {running.process.name:<22} pid {running.child.pid:<8} ran {_duration(ran):<9}"
                f" {_exit_status(running.child.returncode)}"
            )
        return "\n".join(lines)


class ReadinessWatch:
    """Reports services that stop being ready (with why) and when they recover."""

    def __init__(self, stack: Stack, interval: float) -> None:
        self.stack = stack
        self.interval = interval
        self.reasons: dict[str, str] = {}
        self.next_check = time.monotonic() + interval

    def poll(self) -> None:
        if time.monotonic() < self.next_check:
            return
        self.next_check = time.monotonic() + self.interval
        for running in self.stack.running:
            process = running.process
            readiness = check_readiness(process, running.check_errors)
            before = self.reasons.get(process.name)
            if readiness.ready and before is not None:
                del self.reasons[process.name]
                print(f"{process.name} is ready again", flush=True)
            elif not readiness.ready and readiness.reason != before:
                self.reasons[process.name] = readiness.reason
                print(f"{process.name} is not ready:\n{_indent(readiness.reason)}", flush=True)


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
    parser.add_argument(
        "--watch-interval",
        type=float,
        default=5.0,
        help="seconds between readiness checks once running (reports changes with reasons)",
    )
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
    started = time.monotonic()
    status = 0
    try:
        timings = stack.start_all(stop)
        if timings is None:
            status = 130
            return status
        print(_summary(timings, processes), flush=True)
        watch = ReadinessWatch(stack, args.watch_interval)
        while not args.exit_when_ready and not stop.wait(0.5):
            crashed = stack.crashed()
            if crashed is not None:
                raise StackError(
                    f"{crashed.process.name} {_exit_status(crashed.child.returncode)} "
                    f"unexpectedly; stopping the stack\n{crashed.last_lines()}"
                )
            watch.poll()
    except StackError as error:
        print(error, file=sys.stderr)
        status = 1
    finally:
        stack.stop()
        if stack.stopped:
            print(stack.summary(started), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
