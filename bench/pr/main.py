"""`make bench-pr`: the phases of a one-service pull request's CI jobs, timed here.

In a scratch clone of HEAD it commits a one-line change to a service, then runs what
the CI jobs run, each phase as a fresh Pants process without a daemon (as on a fresh
runner) and prints its wall time, its CPU time (user + system, children included) and
the load average, so numbers from a busy machine can be read for what they are. Pants'
local caches are shared with this checkout: they stand in for the REAPI cache hits a
CI job gets on everything the change does not touch.

    python3 -m bench.pr [--service current_account] [--keep]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tools.release.errors import ReleaseError

REPO = Path(__file__).resolve().parents[2]


def cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def phase(name: str, argv: list[str], cwd: Path) -> float:
    """Runs argv, prints its wall and CPU time; its wall time."""
    cpu_before, started = cpu_of_children(), time.monotonic()
    # No Pants daemon, here and in the Pants runs tools.release makes: a fresh runner has
    # none, and the CPU it uses is then counted.
    environment = {**os.environ, "PANTS_PANTSD": "false"}
    result = subprocess.run(
        argv, cwd=cwd, env=environment, capture_output=True, text=True, check=False
    )
    wall, cpu = time.monotonic() - started, cpu_of_children() - cpu_before
    load = os.getloadavg()[0]
    print(f"{name:<34} wall {wall:6.1f} s   cpu {cpu:6.1f} s   load {load:4.1f}", flush=True)
    if result.returncode != 0:
        raise ReleaseError(f"{name}: {' '.join(argv)} failed:\n{result.stdout}{result.stderr}")
    return wall


def git(arguments: list[str], cwd: Path) -> None:
    executable = shutil.which("git")
    if executable is None:
        raise ReleaseError("git is not installed")
    subprocess.run([executable, *arguments], cwd=cwd, check=True)


def bench(package: str, keep: bool) -> None:
    if not (REPO / "services" / package / "BUILD").is_file():
        raise ReleaseError(f"--service {package!r}: no services/{package}/BUILD")
    scratch = Path(tempfile.mkdtemp(prefix="meridian-bench-pr-"))
    clone = scratch / "meridian"
    try:
        git(["clone", "-q", str(REPO), str(clone)], REPO)
        if (REPO / ".pants.rc").is_file():  # machine-specific settings ./pants wrote
            shutil.copy(REPO / ".pants.rc", clone / ".pants.rc")
        source = clone / "services" / package / "main.py"
        source.write_text(source.read_text() + f"# bench {time.time_ns()}\n")
        identity = ["-c", "user.name=bench", "-c", "user.email=bench@meridian.invalid"]
        git([*identity, "commit", "-qam", "bench: one-line change"], clone)
        pants = ["./pants"]
        changed = ["--changed-since=HEAD~1", "--changed-dependents=transitive"]
        print(f"one-line change in services/{package}, {os.cpu_count()} cores")
        walls = {
            "pants bootstrap": phase("pants bootstrap", [*pants, "--version"], clone),
            "affected": phase(
                "affected (tools.release)",
                [
                    sys.executable,
                    "-m",
                    "tools.release",
                    "affected",
                    "--base",
                    "HEAD~1",
                    "--pants-args",
                ],
                clone,
            ),
            "lint": phase("lint check (affected)", [*pants, *changed, "lint", "check"], clone),
            "tailor": phase(
                "tailor/update-build-files --check",
                [*pants, "tailor", "--check", "update-build-files", "--check", "::"],
                clone,
            ),
            "test": phase("test (affected)", [*pants, *changed, "test"], clone),
            "image": phase(
                "image (tools/images/build.sh)",
                ["tools/images/build.sh", "--no-sbom", "--no-lint", f"services/{package}:image"],
                clone,
            ),
        }
        lint_job = walls["pants bootstrap"] + walls["affected"] + walls["lint"] + walls["tailor"]
        test_job = walls["pants bootstrap"] + walls["affected"] + walls["test"]
        build_to_images = walls["pants bootstrap"] + walls["affected"] + walls["image"]
        print(f"lint job, Pants phases:        {lint_job:6.1f} s")
        print(f"test job, Pants phases:        {test_job:6.1f} s")
        print(f"build job until images exist:  {build_to_images:6.1f} s")
    finally:
        if keep:
            print(f"kept {clone}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m bench.pr", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--service", default="current_account", help="package under services/")
    parser.add_argument("--keep", action="store_true", help="keep the scratch clone")
    args = parser.parse_args()
    try:
        bench(args.service, args.keep)
    except ReleaseError as error:
        print(f"bench-pr: {error}", file=sys.stderr)
        return 1
    return 0
