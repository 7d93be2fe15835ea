"""`make bench-cold-start`: how long a new engineer waits, from `git clone` to a running stack.

    python3.11 -m bench.coldstart [--keep]

Clones this checkout's HEAD into a temporary directory and gives it empty caches (HOME,
Meridian's Pants install, Pants' store and named caches, the pex root, pip's and uv's
caches), then runs the README's first command, `make run`, until every process of the
local stack is ready. Its steps are timed from what it prints as it goes (and from when
the bootstrap wrote `.pants.rc`): installing Pants, Pants starting, the build, the
stack. Needs the stack's fixed ports free. Prints seconds per step and since the clone
started.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tools.bootstrap.housekeeping import stop_pantsd

STACK_FILE = Path("deployments/local/processes.yaml")
TARGET_SECONDS = 30.0


class ColdStartError(RuntimeError):
    pass


@dataclass
class Timeline:
    started: float = field(default_factory=time.monotonic)
    phases: list[tuple[str, float, float]] = field(default_factory=list)  # name, duration, total

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        began = time.monotonic()
        print(f"::: {name}", flush=True)
        yield
        now = time.monotonic()
        self.phases.append((name, now - began, now - self.started))

    def end_last_phase_at(self, moment: float) -> None:
        """The last phase ended at `moment` (time.monotonic), before what its block did
        after it (stopping the stack is not part of starting it)."""
        name, duration, total = self.phases[-1]
        began = total - duration
        self.phases[-1] = (name, moment - self.started - began, moment - self.started)

    def split(self, steps: Sequence[tuple[str, float]]) -> None:
        """The last phase's steps, each given by how far into the phase it ended (known
        afterwards); a step that would end before the one before it is left out."""
        _, duration, total = self.phases[-1]
        began, previous = total - duration, 0.0
        for name, ended_at in steps:
            ended = min(ended_at, duration)
            if ended >= previous:
                self.phases.append((f"  {name}", ended - previous, began + ended))
                previous = ended

    def report(self) -> str:
        lines = [f"  {'phase':<34} {'seconds':>8} {'since clone':>12}"]
        lines += [
            f"  {name:<34} {duration:8.1f} {total:12.1f}" for name, duration, total in self.phases
        ]
        return "\n".join(lines)


def stack_ports(stack_file: str) -> list[int]:
    """The fixed ports of the local stack (`port:` of each process)."""
    return [
        int(port) for port in re.findall(r"^\s+port:\s*\"?(\d+)\"?\s*$", stack_file, re.MULTILINE)
    ]


def stack_process_count(stack_file: str) -> int:
    return len(re.findall(r"^\s+- name:", stack_file, re.MULTILINE))


def ports_in_use(ports: Sequence[int]) -> list[int]:
    taken = []
    for port in ports:
        with socket.socket() as sock:
            # As the servers bind: a port a stopped stack left in TIME_WAIT is free.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                taken.append(port)
    return taken


def empty_cache_environment(scratch: Path, base: Mapping[str, str]) -> dict[str, str]:
    """The caller's environment with every cache a fresh machine would not have moved into scratch."""
    python39 = base.get("PANTS_PYTHON") or _interpreter("3.9")
    python311 = base.get("MERIDIAN_PYTHON") or _interpreter("3.11")
    home = scratch / "home"
    caches = scratch / "caches"
    env = dict(base)
    env.update(
        {
            "HOME": str(home),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "MERIDIAN_PANTS_CACHE": str(caches / "meridian-pants"),
            "PANTS_LOCAL_STORE_DIR": str(caches / "pants-lmdb-store"),
            "PANTS_NAMED_CACHES_DIR": str(caches / "pants-named-caches"),
            "PEX_ROOT": str(caches / "pex-root"),
            "PIP_CACHE_DIR": str(caches / "pip"),
            "UV_CACHE_DIR": str(caches / "uv"),
            # The interpreters themselves are the machine's, found before HOME moved.
            "PANTS_PYTHON": python39,
            "MERIDIAN_PYTHON": python311,
        }
    )
    # Both findable, as on a machine where both are installed, but after the machine's own
    # PATH: `python3` stays what it is there (with 3.9 first it would be 3.9, and every
    # PEX would first look for its 3.11).
    env["PATH"] = os.pathsep.join(
        [base.get("PATH", os.defpath), str(Path(python39).parent), str(Path(python311).parent)]
    )
    # pyenv finds its versions through HOME unless told where they are.
    env.setdefault("PYENV_ROOT", str(Path(base.get("HOME", "~")).expanduser() / ".pyenv"))
    home.mkdir(parents=True)
    return env


def _interpreter(version: str) -> str:
    for candidate in [
        shutil.which(f"python{version}"),
        *sorted(Path.home().glob(f".pyenv/versions/{version}*/bin/python{version}")),
    ]:
        if candidate is None:
            continue
        result = subprocess.run(
            [str(candidate), "-c", "import sys; print(sys.executable)"],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode == 0:
            return result.stdout.strip()
    raise ColdStartError(
        f"no CPython {version} found: install it or set PANTS_PYTHON / MERIDIAN_PYTHON"
    )


def program(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ColdStartError(f"{name} is not installed")
    return found


def run(argv: Sequence[str], cwd: Path, env: Mapping[str, str]) -> None:
    result = subprocess.run(list(argv), cwd=cwd, env=dict(env), check=False)
    if result.returncode != 0:
        raise ColdStartError(f"{' '.join(argv)} failed with exit status {result.returncode}")


# What `make run` prints at the end of each step; the last line that matches wins.
MILESTONES = {
    "pants started": re.compile(r"\[INFO\] Scheduler initialized"),
    "built": re.compile(r"Wrote dist/|Writing generated files to dist/"),
}


def run_until_ready(
    clone: Path, env: Mapping[str, str], processes: int, timeout: float
) -> dict[str, float]:
    """`make run` until its summary lists every process as ready, then Ctrl-C (its process
    group). Returns when (time.monotonic) each milestone's last line was printed."""
    child = subprocess.Popen(
        [program("make"), "run"],
        cwd=clone,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    if child.stdout is None:
        raise ColdStartError("make run's output could not be read")
    started = time.monotonic()
    ready, deadline = 0, started + timeout
    seen: dict[str, float] = {}
    try:
        for line in child.stdout:
            print(f"  {time.monotonic() - started:6.1f} {line.rstrip()}", flush=True)
            seen.update(
                (name, time.monotonic())
                for name, pattern in MILESTONES.items()
                if pattern.search(line)
            )
            ready += " ready in " in line
            if ready >= processes:
                seen["ready"] = time.monotonic()
                return seen
            if time.monotonic() > deadline:
                raise ColdStartError(f"the stack was not ready within {timeout:.0f} s")
        raise ColdStartError(f"make run exited ({child.wait()}) before the stack was ready")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGINT)
        try:
            child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python3.11 -m bench.coldstart", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--keep", action="store_true", help="keep the clone and its caches")
    parser.add_argument(
        "--ready-timeout", type=float, default=300.0, help="seconds make run may take"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    source = Path.cwd()
    stack_file = (source / STACK_FILE).read_text()
    scratch = Path(tempfile.mkdtemp(prefix="meridian-cold-start-"))
    # The local stack runs PostgreSQL as its own user, which must reach the clone.
    scratch.chmod(0o755)
    clone = scratch / "meridian"
    timeline = Timeline()
    try:
        env = empty_cache_environment(scratch, os.environ)
        with timeline.phase("git clone"):
            run(
                [program("git"), "clone", "--quiet", "--no-local", str(source), str(clone)],
                scratch,
                env,
            )
        taken = ports_in_use(stack_ports(stack_file))
        if taken:
            raise ColdStartError(
                f"ports {', '.join(map(str, taken))} are in use (another local stack?)"
            )
        run_started, run_started_wall = time.monotonic(), time.time()
        with timeline.phase("make run (every process ready)"):
            seen = run_until_ready(clone, env, stack_process_count(stack_file), args.ready_timeout)
        # ./pants writes .pants.rc once Pants and its tools are installed; Pants starts
        # before that (when Pants is in), so its step is what remains of its start.
        seen["installed"] = run_started + (clone / ".pants.rc").stat().st_mtime - run_started_wall
        timeline.end_last_phase_at(seen["ready"])
        ended = seen["ready"] - run_started
        steps = [
            ("installing Pants, pex, protoc", "installed"),
            ("Pants starting", "pants started"),
            ("building the PEXes", "built"),
        ]
        timeline.split(
            [
                (label, seen[milestone] - run_started)
                for label, milestone in steps
                if milestone in seen
            ]
            + [("starting the stack", ended)]
        )
    except ColdStartError as error:
        print(f"cold start failed: {error}\n{timeline.report()}", file=sys.stderr)
        return 1
    finally:
        stop_pantsd(clone)
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    print(
        f"\nCold start (fresh clone, empty caches; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs):"
    )
    print(timeline.report())
    total = max(total for _, _, total in timeline.phases)
    verdict = "within" if total <= TARGET_SECONDS else "over"
    print(f"  total {total:.1f} s: {verdict} the {TARGET_SECONDS:.0f} s target")
    return 0
