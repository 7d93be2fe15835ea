"""One measured `pants test ::` run: a fresh clone with empty local caches and the
remote cache at a given address."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.cache_demo.errors import DemoError
from bench.cache_demo.log import log
from bench.cache_demo.programs import executable

# Tells ./pants where Python is; every other PANTS_* setting of the caller (e.g.
# PANTS_CONFIG_FILES=pants.ci.toml in CI) would change what is measured.
KEPT_PANTS_SETTINGS = frozenset({"PANTS_PYTHON"})


@dataclass(frozen=True)
class SuiteRun:
    """Where one run keeps its clone, its empty local caches and its output."""

    name: str
    root: Path

    @property
    def checkout(self) -> Path:
        return self.root / "src"

    @property
    def local_store(self) -> Path:
        return self.root / "lmdb_store"

    @property
    def named_caches(self) -> Path:
        return self.root / "named_caches"

    @property
    def log_file(self) -> Path:
        return self.root / "pants.log"


def pants_environment(caller: Mapping[str, str], run: SuiteRun) -> dict[str, str]:
    """The caller's environment without its Pants settings, with this run's empty
    local caches: the process cache and file store, and the named caches (pip/pex
    downloads). .pants.d is new with the clone."""
    env = {
        key: value
        for key, value in caller.items()
        if not key.startswith("PANTS_") or key in KEPT_PANTS_SETTINGS
    }
    env["PANTS_LOCAL_STORE_DIR"] = str(run.local_store)
    env["PANTS_NAMED_CACHES_DIR"] = str(run.named_caches)
    return env


def pants_arguments(remote_port: int) -> list[str]:
    return [
        # No daemon: nothing survives in memory from one run to the next.
        "--no-pantsd",
        "--no-dynamic-ui",
        "--colors=false",
        "--remote-cache-read",
        "--remote-cache-write",
        f"--remote-store-address=grpc://127.0.0.1:{remote_port}",
        # Cache errors are warned about (with back-off), so a flaky server shows.
        "--remote-cache-warnings=backoff",
        # "Counters:" at the end of the run: the numbers the demo reports.
        "--stats-log",
        # Histograms would need a plugin from the package index; the counters do not.
        "--ignore-warnings=+['Please run with `--plugins=hdrhistogram`']",
        "test",
        "::",
    ]


def clone(source_repo: Path, commit: str, into: Path) -> None:
    # --shared borrows the caller's object store read-only: fast, and the caller's
    # checkout, index and refs are left alone.
    subprocess.run(
        [
            executable("git"),
            "clone",
            "--quiet",
            "--shared",
            "--no-checkout",
            str(source_repo),
            str(into),
        ],
        check=True,
    )
    subprocess.run(
        [executable("git"), "-C", str(into), "checkout", "--quiet", "--detach", commit], check=True
    )


def run_tee(argv: list[str], cwd: Path, env: Mapping[str, str], log_file: Path) -> int:
    """Runs argv with its output going both to this terminal and to log_file."""
    with (
        log_file.open("wb") as sink,
        subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        ) as process,
    ):
        try:
            for line in process.stdout or ():
                sink.write(line)
                sys.stdout.buffer.write(line)
                sys.stdout.buffer.flush()
        except BaseException:
            # Interrupted (Ctrl-C, SIGTERM): the run stops with the demo.
            process.terminate()
            raise
    return process.returncode


def run_suite(
    run: SuiteRun, source_repo: Path, commit: str, remote_port: int, caller: Mapping[str, str]
) -> tuple[str, float]:
    """Clones, then runs `pants test ::`; its output and wall time in seconds."""
    run.local_store.mkdir(parents=True)
    run.named_caches.mkdir(parents=True)
    clone(source_repo, commit, run.checkout)
    env = pants_environment(caller, run)
    # The first ./pants in a clone writes its machine-specific .pants.rc; not timed.
    subprocess.run(
        ["./pants", "--no-pantsd", "--version"],
        cwd=run.checkout,
        env=env,
        stdout=subprocess.DEVNULL,
        check=True,
    )
    log(f"{run.name}: pants test :: (clone {run.checkout})")
    started = time.monotonic()
    returncode = run_tee(
        ["./pants", *pants_arguments(remote_port)], run.checkout, env, run.log_file
    )
    seconds = time.monotonic() - started
    if returncode != 0:
        raise DemoError(
            f"{run.name}: pants test :: failed (output above); only passing tests are cached"
        )
    return run.log_file.read_text(errors="replace"), seconds
