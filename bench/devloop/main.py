"""`make bench-dev-loop`: how long each step of the inner loop takes, median of N runs.

    make bench-dev-loop [BENCH_ARGS="--local | --allow-context NAME, --runs 3, --no-cold, --keep"]

By default every row runs through Tilt against the cluster the current kube context
names (bench/devloop/cluster.py): `tilt ci` from a fresh clone with empty caches, then
in a scratch clone under `tilt up`, a one-line edit in a service until its pod serves
it (live update), a chassis edit until every service's pod does, a BUILD edit until a
new pod serves, a ConfigMap value in the dev overlay until every service has rolled
(and how many builds Tilt ran meanwhile). Without a cluster that answers it says so.

`--local` measures what local processes have (what `tilt up -- --local` does: a service
runs its code from the working tree and restarts itself in place on a .py edit; an edit
of one of its `deps` rebuilds with Pants and restarts it) in a scratch clone of HEAD with
warm caches, its stack on free ports: a one-line edit in a service until the process
serves it, an edit in the chassis until all services do, a BUILD edit until the new
process serves, a changed setting in deployments/local/processes.yaml until the process
is restarted with it (no build), and `make run` from a fresh clone with empty caches
(`make bench-cold-start`, which needs the stack's fixed ports free); it lists the rows
that need a cluster as such. Prints the load average before and after each row.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.devloop.cluster import TiltLoop, cluster_answers, tilt_ci_cold
from bench.devloop.edits import BenchError, insert_marker, toggle_setting
from bench.devloop.stack import LocalStack, StackError, clean_environment, program, remapped
from meridian_devstack.stack import Process, load_stack
from meridian_testing.servers import free_port

STACK_FILE = Path("deployments/local/processes.yaml")
SERVICE = "current-account"
SERVICE_MAIN = Path("services/current_account/main.py")
SERVICE_BUILD = Path("services/current_account/BUILD")
CHASSIS = Path("libs/meridian_chassis/__init__.py")
READY_TIMEOUT = 180.0


def restarts_on(process: Process, edited: Path) -> bool:
    """Whether an edit of `edited` is one of `process`'s deps (a path or a directory above it)."""
    return any(edited == Path(dep) or Path(dep) in edited.parents for dep in process.deps)


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f}/{five:.1f}"


@dataclass
class Result:
    step: str
    seconds: list[float] = field(default_factory=list)
    note: str = ""

    def line(self) -> str:
        if not self.seconds:
            return f"  {self.step:<64} {self.note}"
        runs = " ".join(f"{s:.2f}" for s in self.seconds)
        median = statistics.median(self.seconds)
        return f"  {self.step:<64} {median:7.2f} s   runs {runs}  {self.note}".rstrip()


class LocalLoop:
    """A scratch clone of HEAD with its stack running on free ports."""

    def __init__(self, source: Path, scratch: Path) -> None:
        self.clone = scratch / "meridian"
        self.logs = scratch / "logs"
        self.logs.mkdir(parents=True)
        subprocess.run(
            [program("git"), "clone", "--quiet", str(source), str(self.clone)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        declared = load_stack(self.clone / STACK_FILE)
        self.ports = {process.port: free_port() for process in declared}
        self.processes = {p.name: p for p in remapped(declared, self.ports)}
        self.stack = LocalStack(self.clone, self.logs)

    def pants(self, *argv: str) -> None:
        result = subprocess.run(
            ["./pants", *argv],
            cwd=self.clone,
            env=clean_environment(),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise BenchError(f"./pants {' '.join(argv)} failed:\n{result.stderr[-2000:]}")

    def build(self, process: Process) -> None:
        if process.build[:1] != ("./pants",):
            raise BenchError(f"{process.name}: build {process.build} is not a Pants command")
        self.pants(*process.build[1:])

    def services(self) -> list[str]:
        return [name for name, p in self.processes.items() if "services" in p.labels]

    def start(self) -> None:
        """Build everything (not timed), then start the stack, backing servers first."""
        # One run of each distinct build (the backing servers share theirs).
        for process in {p.build: p for p in self.processes.values()}.values():
            self.build(process)
        for process in self.processes.values():
            self.stack.start(process)
        self.stack.wait_ready(list(self.processes), READY_TIMEOUT)

    def apply(self, edited: Path, names: Sequence[str], token: str | None) -> None:
        """What follows an edit under Tilt's local resources: a process whose `deps` hold
        the edited path is rebuilt and restarted; any other restarts itself in place
        (MERIDIAN_RELOAD). Returns once each named one is ready (and printed `token`)."""
        for name in names:
            if restarts_on(self.processes[name], edited):
                self.build(self.processes[name])
                self.stack.restart(self.processes[name])
        self.stack.wait_ready(names, READY_TIMEOUT, token)

    # The rows: each makes its edit and returns the seconds until it is served.
    def service_edit(self) -> float:
        token = uuid.uuid4().hex[:12]
        started = time.monotonic()
        insert_marker(self.clone / SERVICE_MAIN, token)
        self.apply(SERVICE_MAIN, [SERVICE], token)
        return time.monotonic() - started

    def chassis_edit(self) -> float:
        token = uuid.uuid4().hex[:12]
        started = time.monotonic()
        insert_marker(self.clone / CHASSIS, token)
        self.apply(CHASSIS, self.services(), token)
        return time.monotonic() - started

    def build_edit(self) -> float:
        started = time.monotonic()
        with (self.clone / SERVICE_BUILD).open("a") as build:
            build.write(f"# devloop-bench {uuid.uuid4().hex[:12]}\n")
        self.apply(SERVICE_BUILD, [SERVICE], None)
        return time.monotonic() - started

    def config_change(self) -> float:
        """A changed setting restarts exactly the processes whose definition changed."""
        started = time.monotonic()
        toggle_setting(self.clone / STACK_FILE, SERVICE, "LOG_LEVEL", ("INFO", "DEBUG"))
        changed = [
            p
            for p in remapped(load_stack(self.clone / STACK_FILE), self.ports)
            if p != self.processes[p.name]
        ]
        if [p.name for p in changed] != [SERVICE]:
            raise BenchError(f"a setting of {SERVICE} changed {[p.name for p in changed]}")
        for process in changed:
            self.processes[process.name] = process
            self.stack.restart(process)
        self.stack.wait_ready([p.name for p in changed], READY_TIMEOUT)
        return time.monotonic() - started

    def close(self) -> None:
        self.stack.stop_all()
        subprocess.run(
            [program("make"), "--no-print-directory", "stop-pantsd"],
            cwd=self.clone,
            env=clean_environment(),
            capture_output=True,
            check=False,
        )


def cold_make_run(source: Path) -> float:
    """`make bench-cold-start`'s total: fresh clone, empty caches, every process ready."""
    result = subprocess.run(
        [sys.executable, "-m", "bench.coldstart"],
        cwd=source,
        env=clean_environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    found = re.search(r"^  total ([\d.]+) s", result.stdout, re.M)
    if result.returncode != 0 or found is None:
        raise BenchError(
            f"make bench-cold-start failed:\n{(result.stdout + result.stderr)[-2000:]}"
        )
    return float(found[1])


CLUSTER_ROWS = (
    "`tilt ci` with empty Pants caches -> all healthy",
    "one-line edit in a service -> pod serves it (live update)",
    "edit in libs/meridian_chassis -> every service's pod serves it",
    "edit of services/current_account/BUILD -> new pod serving",
    "ConfigMap value in the dev overlay -> pods roll",
)


def measure(step: str, runs: int, once: Callable[[], float]) -> Result:
    result = Result(step)
    before = load()
    try:
        for _ in range(runs):
            result.seconds.append(once())
    except (BenchError, StackError) as error:
        result.note = f"failed: {str(error).splitlines()[0]}"
        print(error, file=sys.stderr)
    result.note = f"load {before} -> {load()}  {result.note}".rstrip()
    print(result.line(), flush=True)
    return result


def run_local(source: Path, runs: int, cold: bool, keep: bool) -> list[Result]:
    scratch = Path(tempfile.mkdtemp(prefix="meridian-dev-loop-"))
    scratch.chmod(0o755)  # the local PostgreSQL runs as its own user
    results: list[Result] = []
    loop = None
    try:
        loop = LocalLoop(source, scratch)
        print(f"building and starting the stack in {loop.clone} (not timed)...", flush=True)
        loop.start()
        print(f"  {'step (local processes)':<64} {'median':>7}", flush=True)
        results += [
            measure("one-line edit in a service -> new process serves it", runs, loop.service_edit),
            measure(
                "edit in libs/meridian_chassis -> every service serves it", runs, loop.chassis_edit
            ),
            measure(
                "edit of services/current_account/BUILD -> new process serving",
                runs,
                loop.build_edit,
            ),
            measure(
                "setting in processes.yaml -> its process restarted (no build)",
                runs,
                loop.config_change,
            ),
        ]
    finally:
        if loop is not None:
            loop.close()
        if keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    if cold:
        results.append(
            measure(
                "`make run` from a fresh clone, empty caches", runs, lambda: cold_make_run(source)
            )
        )
    else:
        results.append(
            Result("`make run` from a fresh clone, empty caches", note="skipped (--no-cold)")
        )
    results += [Result(row, note="needs a cluster") for row in CLUSTER_ROWS]
    return results


def run_cluster(source: Path, runs: int, allow: str | None, keep: bool) -> list[Result]:
    """Every row through Tilt against the current context's cluster."""
    context = cluster_answers()
    print(f"kube context {context}: its cluster answers", flush=True)
    results = [measure(CLUSTER_ROWS[0], runs, lambda: tilt_ci_cold(source, allow))]
    services = {p.name: p.port for p in load_stack(source / STACK_FILE) if "services" in p.labels}
    scratch = Path(tempfile.mkdtemp(prefix="meridian-dev-loop-"))
    loop = TiltLoop(source, scratch, services, allow)
    try:
        print("tilt up in a scratch clone (not timed)...", flush=True)
        loop.up()
        built: list[int] = []

        def config_change() -> float:
            seconds, images = loop.config_change()
            built.append(images)
            return seconds

        results += [
            measure(CLUSTER_ROWS[1], runs, loop.service_edit),
            measure(CLUSTER_ROWS[2], runs, loop.chassis_edit),
            measure(CLUSTER_ROWS[3], runs, loop.build_edit),
            measure(CLUSTER_ROWS[4], runs, config_change),
        ]
        results[-1].note += f"  Tilt builds during it: {built}"
    finally:
        loop.down()
        if keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return results


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make bench-dev-loop", description=__doc__.split("\n")[0])
    parser.add_argument("--local", action="store_true", help="local processes, no cluster")
    parser.add_argument("--runs", type=int, default=3, help="runs per row (the median is shown)")
    parser.add_argument("--no-cold", action="store_true", help="leave out the cold `make run`")
    parser.add_argument("--keep", action="store_true", help="keep the scratch clone and logs")
    parser.add_argument(
        "--allow-context",
        help="a kube context Tilt does not take for local (tilt up -- --allow-context)",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    source = Path.cwd()
    if not (source / STACK_FILE).is_file():
        print(f"run from the repository root: {STACK_FILE} not found", file=sys.stderr)
        return 2
    print(f"dev loop, median of {args.runs}; {os.cpu_count()} CPUs, load (1/5 min) {load()}")
    if args.local:
        results = run_local(source, args.runs, not args.no_cold, args.keep)
        mode = "--local: local processes"
    else:
        try:
            results = run_cluster(source, args.runs, args.allow_context, args.keep)
        except (BenchError, StackError) as error:
            print(
                f"{error}\n(make bench-dev-loop BENCH_ARGS=--local measures without a cluster)",
                file=sys.stderr,
            )
            return 2
        mode = "Tilt on the current context's cluster"
    print(f"\nDev loop ({mode}), median of {args.runs}, {os.cpu_count()} CPUs:")
    for result in results:
        print(result.line())
    return 1 if any(r.note.startswith("load") and "failed" in r.note for r in results) else 0
