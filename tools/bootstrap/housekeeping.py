"""What an install does around Pants' daemon and earlier installs: stops the checkout's
pantsd before replacing its files, starts one early when the next command wants it, and
removes old installs nothing runs from."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from tools.bootstrap.layout import Layout


def start_pantsd(layout: Layout) -> subprocess.Popen[bytes]:
    """`pants --version` with the caller's environment: starts the daemon the next run
    hands its command to. Its failures are the next run's to report."""
    return subprocess.Popen(
        [str(layout.venv / "bin/pants"), "--version"],
        cwd=layout.build_root,
        stdout=subprocess.DEVNULL,
    )


def wants_pantsd(command: Sequence[str], env: Mapping[str, str]) -> bool:
    """Whether the command ./pants is about to run uses the daemon (Pants' default)."""
    if any(arg in ("--no-pantsd", "--pantsd=false", "--pantsd=False") for arg in command):
        return False
    return env.get("PANTS_PANTSD", "true").strip().lower() not in ("false", "0", "no", "off")


# Each lock or installer change makes a new install (about 300 MB) beside the old ones.
STALE_AFTER_DAYS = 30
INSTALL_NAME = re.compile(r"(uv-)?[0-9a-f]{16}")


def installs_in_use(cache_root: Path, proc: Path = Path("/proc")) -> set[str] | None:
    """The installs under cache_root that a running process has files of mapped (a pantsd
    maps Pants' native engine; its command line is its title, not its path). None where
    that cannot be told: then nothing is removed."""
    if not (proc / "self/maps").is_file():
        return None
    prefix = f"{cache_root}/"
    used = set()
    for maps in proc.glob("[0-9]*/maps"):
        try:
            text = maps.read_text(errors="replace")
        except OSError:  # gone, or another user's: not using this user's cache
            continue
        for line in text.splitlines():
            path = line.split(maxsplit=5)[-1] if line.count(" ") >= 5 else ""
            if path.startswith(prefix):
                used.add(path[len(prefix) :].split("/", 1)[0])
    return used


def stale_installs(cache_root: Path, keep: set[str], in_use: set[str], now: float) -> list[Path]:
    """Installs other than `keep` made more than STALE_AFTER_DAYS ago that nothing runs
    from; a checkout still on such a lock installs it again when next used."""
    stale = []
    for path in sorted(cache_root.iterdir()):
        if not INSTALL_NAME.fullmatch(path.name) or path.name in keep | in_use:
            continue
        marker = path / "ready"
        made = (marker if marker.exists() else path).stat().st_mtime
        if now - made > STALE_AFTER_DAYS * 86400:
            stale.append(path)
    return stale


def remove_stale_installs(cache_root: Path, keep: set[str]) -> None:
    in_use = installs_in_use(cache_root)
    if in_use is None:
        return
    for path in stale_installs(cache_root, keep, in_use, time.time()):
        print(
            f"pants bootstrap: removing {path}, unused and over {STALE_AFTER_DAYS} days old",
            file=sys.stderr,
        )
        shutil.rmtree(path, ignore_errors=True)


def stop_pantsd(build_root: Path, seconds: float = 10) -> None:
    """Stops this checkout's pantsd, found by the pid file Pants keeps in it."""
    for pid_file in build_root.glob(".pids/*/pantsd/pid"):
        try:
            pid = int(pid_file.read_text().strip())
            os.kill(pid, signal.SIGTERM)
        except (OSError, ValueError):
            continue
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except OSError:
                break
            time.sleep(0.1)
