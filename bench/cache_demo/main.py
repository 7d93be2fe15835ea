"""`make ci-cache-demo` (see __init__.py)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from types import FrameType

from bench.cache_demo import buildgrid
from bench.cache_demo.errors import DemoError
from bench.cache_demo.log import log
from bench.cache_demo.programs import executable
from bench.cache_demo.report import CacheReport, RunOutput, parse_run
from bench.cache_demo.settings import DemoSettings
from bench.cache_demo.suite import SuiteRun, run_suite

SERVER_DIR = Path("bench/cache_demo/server")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        [executable("git"), "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "meridian" / "remote-cache"


def run_demo(settings: DemoSettings) -> None:
    repo_root = Path(git(Path(__file__).resolve().parent, "rev-parse", "--show-toplevel"))
    files = buildgrid.ServerFiles(
        requirements=repo_root / SERVER_DIR / "requirements.txt",
        config=repo_root / SERVER_DIR / "buildgrid.conf",
    )
    python = buildgrid.find_python(buildgrid.python_candidates(Path.home()))
    venv = buildgrid.install(files.requirements, cache_root(), python)
    work = Path(tempfile.mkdtemp(prefix="meridian-cache-demo."))
    try:
        commit = git(repo_root, "rev-parse", "HEAD")
        log(f"testing commit {commit} (uncommitted changes are not part of the demo)")
        with buildgrid.running_server(venv, files, work) as port:

            def measure(name: str) -> RunOutput:
                run = SuiteRun(name, work / name)
                return parse_run(*run_suite(run, repo_root, commit, port, os.environ))

            first, second = measure("run1"), measure("run2")
            report = CacheReport(first, second, settings.min_hit_percent)
            print(report.render(), flush=True)
            if report.problems():
                raise DemoError("the remote cache did not serve run 2 (see FAIL above)")
    finally:
        if settings.keep_work_dir:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Unwinds like any exit, so the server is stopped and the temp dir removed.
    raise SystemExit(128 + signum)


def main() -> int:
    try:
        settings = DemoSettings.from_environment(os.environ)
    except DemoError as error:
        log(f"ERROR: {error}")
        return 2
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        run_demo(settings)
    except DemoError as error:
        log(f"ERROR: {error}")
        return 1
    except subprocess.CalledProcessError as error:
        log(f"ERROR: {error}")
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
