"""A checkout's local stack (deployments/local/processes.yaml) on free ports, each
process started, stopped and restarted on its own, as `tilt up -- --local` does."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from meridian_devstack.health import check_readiness
from meridian_devstack.stack import Process


class StackError(RuntimeError):
    pass


def program(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise StackError(f"{name} is not installed")
    return found


def clean_environment(extra: Mapping[str, str] = {}) -> dict[str, str]:
    """This environment without what a PEX sets for itself, plus `extra`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PEX")}
    env.update(extra)
    return env


def _swap(text: str, ports: Mapping[int, int]) -> str:
    for old, new in ports.items():
        if text == str(old):
            return str(new)
        text = re.sub(rf":{old}(?!\d)", f":{new}", text)
    return text


def remapped(processes: Sequence[Process], ports: Mapping[int, int]) -> list[Process]:
    """The processes on other ports: each `port`, and every argument or setting naming
    one (`"26257"`, `127.0.0.1:26257/db`), moved to its new port."""
    return [
        replace(
            process,
            port=ports[process.port],
            cmd=tuple(_swap(arg, ports) for arg in process.cmd),
            env={key: _swap(value, ports) for key, value in process.env.items()},
        )
        for process in processes
    ]


@dataclass
class Running:
    process: Process
    child: subprocess.Popen[bytes]
    log: Path
    started: float


class LocalStack:
    def __init__(self, checkout: Path, logs: Path) -> None:
        self.checkout = checkout
        self.logs = logs
        self.running: dict[str, Running] = {}

    def start(self, process: Process) -> Running:
        log = self.logs / f"{process.name}.log"
        with log.open("ab") as output:
            child = subprocess.Popen(
                list(process.cmd),
                cwd=self.checkout,
                env=clean_environment(process.env),
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        running = Running(process, child, log, time.monotonic())
        self.running[process.name] = running
        return running

    def stop(self, name: str) -> None:
        running = self.running.pop(name, None)
        if running is None or running.child.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(running.child.pid, 15)
        try:
            running.child.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(running.child.pid, 9)
            running.child.wait()

    def restart(self, process: Process) -> Running:
        self.stop(process.name)
        return self.start(process)

    def stop_all(self) -> None:
        for name in reversed(list(self.running)):
            self.stop(name)

    def wait_ready(self, names: Sequence[str], timeout: float, marker: str | None = None) -> None:
        """Until each named process is ready and, given a marker, has printed it."""
        deadline = time.monotonic() + timeout
        waiting = list(names)
        while waiting:
            for name in list(waiting):
                running = self.running[name]
                if running.child.poll() is not None:
                    raise StackError(
                        f"{name} exited with {running.child.returncode}:\n{tail(running.log)}"
                    )
                printed = marker is None or marker in running.log.read_text(errors="replace")
                if printed and check_readiness(running.process, timeout=1.0).ready:
                    waiting.remove(name)
            if waiting and time.monotonic() > deadline:
                details = "\n".join(f"{n}:\n{tail(self.running[n].log)}" for n in waiting)
                raise StackError(f"not ready within {timeout:g} s: {waiting}\n{details}")
            if waiting:
                time.sleep(0.05)


def tail(log: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    return "(no log)"
