"""Try every README command in a fresh clone of HEAD, as a new user would.

    python3 -m tools.readme [--junit FILE] [--only COMMAND]...

Each command runs as tools/readme/checks.py says (as written, in a fast safe form, or
not, with the reason); the clone is removed afterwards. Exit status 1 when a command
fails its check or the README gives a command with no check.
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
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from tools.readme.checks import CHECKS, Run, Skip
from tools.readme.commands import makefile_tasks, read, readme_commands

REPO = Path(__file__).resolve().parents[2]
# Inherited from a calling make (make test): a clone's make must start afresh.
PANTSD_SLOW_START = "exceeded timeout of 60 seconds while waiting for pantsd to start"
MAKE_VARIABLES = ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEFILES")


@dataclass(frozen=True)
class Outcome:
    command: str
    seconds: float
    problem: str | None = None  # None: passed
    skipped: str | None = None


def program(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found on PATH")
    return found


# As for Pants' tests (pants.toml, [test]): every proxy and index points at a closed
# loopback port, so a command that would reach a package index fails instead.
HERMETIC = {
    **{
        name: "http://127.0.0.1:9"
        for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")
    },
    "no_proxy": "127.0.0.1,localhost,::1",
    "NO_PROXY": "127.0.0.1,localhost,::1",
    "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
    "UV_INDEX_URL": "http://127.0.0.1:9/simple",
}


def _environment(run: Run) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in MAKE_VARIABLES} | HERMETIC
    if run.without_programs:
        env["PATH"] = os.pathsep.join(
            folder
            for folder in env.get("PATH", "").split(os.pathsep)
            if not any(Path(folder, program).exists() for program in run.without_programs)
        )
    return env


@contextlib.contextmanager
def _holding(port: int | None) -> Iterator[None]:
    if port is None:
        yield
        return
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(("127.0.0.1", port))
        except OSError:
            yield  # another process holds it already: taken all the same
            return
        listener.listen()
        yield


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback
            return int(response.status) == 200
    except (OSError, urllib.error.URLError):
        return False


def _stop(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _execute(command: str, run: Run, clone: Path) -> tuple[int | None, str]:
    """(exit status, or None when it timed out or was stopped once serving; output)."""
    with tempfile.TemporaryFile("w+") as output:
        process = subprocess.Popen(
            [program("bash"), "-c", command],
            cwd=clone,
            env=_environment(run),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        deadline = time.monotonic() + run.timeout
        status: int | None = None
        while time.monotonic() < deadline:
            status = process.poll()
            if status is not None:
                break
            if run.serves and _answers(run.serves):
                _stop(process)
                status = None
                output.seek(0)
                return 0, output.read()
            time.sleep(0.5)
        else:
            _stop(process)
        output.seek(0)
        return status, output.read()


def check(command: str, run: Run, clone: Path) -> str | None:
    """What is wrong with the command's run, or None."""
    for folder in run.prepare:
        (clone / folder).mkdir(parents=True, exist_ok=True)
    if run.serves and _answers(run.serves):
        return f"{run.serves} answers before the command ran: free its port and try again"
    with _holding(run.hold_port):
        status, output = _execute(run.instead or command, run, clone)
        if PANTSD_SLOW_START in output:
            # Pants gives its daemon 60 s to start; an overloaded machine can miss that.
            print(f"      (pantsd did not start within 60 s; trying `{command}` again)", flush=True)
            status, output = _execute(run.instead or command, run, clone)
    tail = "\n".join(output.splitlines()[-15:])
    if status is None:
        return f"did not finish within {run.timeout:g}s; last output:\n{tail}"
    if status != run.status:
        return f"exit status {status}, expected {run.status}; last output:\n{tail}"
    problems = [f"no match for {p!r}" for p in run.expect if not re.search(p, output, re.M)]
    problems += [f"output contains {p!r}" for p in run.reject if p in output]
    if run.lists_tasks:
        tasks = makefile_tasks(read(clone / "Makefile"))
        problems += [
            f"does not list `make {t}`" for t in tasks if not re.search(rf"^  {t} ", output, re.M)
        ]
    problems += [f"{path} is still there" for path in run.leaves_no if (clone / path).exists()]
    if problems:
        return "; ".join(problems) + f"; last output:\n{tail}"
    return None


def clone_head(into: Path) -> Path:
    clone = into / "meridian"
    subprocess.run(
        [program("git"), "clone", "--quiet", "--no-hardlinks", str(REPO), str(clone)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    # As a clone of main is: origin/main is HEAD (whatever branch HEAD came from).
    subprocess.run(
        [program("git"), "update-ref", "refs/remotes/origin/main", "HEAD"], cwd=clone, check=True
    )
    return clone


def run_all(clone: Path, only: list[str]) -> list[Outcome]:
    commands = readme_commands(read(clone / "README.md"))
    outcomes = [
        Outcome(c, 0.0, problem="README gives it but tools/readme/checks.py has no check for it")
        for c in commands
        if c not in CHECKS
    ]
    for outcome in outcomes:
        print(f"FAIL  {outcome.command}  ({outcome.problem})", flush=True)
    for command, how in CHECKS.items():
        if command not in commands or (only and command not in only):
            continue
        if isinstance(how, Skip):
            outcomes.append(Outcome(command, 0.0, skipped=how.reason))
            print(f"skip  {command}  ({how.reason})", flush=True)
            continue
        started = time.monotonic()
        problem = check(command, how, clone)
        outcome = Outcome(command, time.monotonic() - started, problem=problem)
        outcomes.append(outcome)
        verdict = "ok  " if problem is None else "FAIL"
        print(f"{verdict}  {command}  ({outcome.seconds:.1f}s)", flush=True)
        if problem:
            print("      " + problem.replace("\n", "\n      "), flush=True)
    return outcomes


def junit(outcomes: list[Outcome]) -> ElementTree.ElementTree:
    suite = ElementTree.Element(
        "testsuite",
        name="README commands",
        tests=str(len(outcomes)),
        failures=str(sum(o.problem is not None for o in outcomes)),
        skipped=str(sum(o.skipped is not None for o in outcomes)),
    )
    for outcome in outcomes:
        case = ElementTree.SubElement(
            suite,
            "testcase",
            classname="README",
            name=outcome.command,
            time=f"{outcome.seconds:.3f}",
        )
        if outcome.problem is not None:
            ElementTree.SubElement(
                case, "failure", message=outcome.problem.splitlines()[0]
            ).text = outcome.problem
        elif outcome.skipped is not None:
            ElementTree.SubElement(case, "skipped", message=outcome.skipped)
    return ElementTree.ElementTree(suite)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--junit", type=Path, help="also write a JUnit XML report here")
    parser.add_argument("--only", action="append", default=[], help="try only this README command")
    parser.add_argument("--keep", action="store_true", help="keep the clone")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="meridian-readme-"))
    try:
        clone = clone_head(workdir)
        head = subprocess.run(
            [program("git"), "rev-parse", "--short", "HEAD"],
            cwd=clone,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        print(
            f"README commands, tried in a fresh clone of HEAD ({head}; uncommitted changes are not in it)"
        )
        try:
            outcomes = run_all(clone, args.only)
        finally:
            # Whatever ran, no pantsd of the clone outlives it.
            subprocess.run(
                [program("make"), "--no-print-directory", "stop-pantsd"],
                cwd=clone,
                env=_environment(Run()),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            )
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.junit:
        args.junit.parent.mkdir(parents=True, exist_ok=True)
        junit(outcomes).write(args.junit, encoding="unicode", xml_declaration=True)
    failed = [o for o in outcomes if o.problem is not None]
    ran = sum(o.problem is None and o.skipped is None for o in outcomes)
    skipped = sum(o.skipped is not None for o in outcomes)
    print(f"README commands: {ran} passed, {len(failed)} failed, {skipped} not run (reasons above)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
