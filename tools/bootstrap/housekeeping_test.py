"""Around an install: when pantsd starts early, stopping the checkout's pantsd, and which
earlier installs go."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tools.bootstrap.housekeeping import (
    installs_in_use,
    stale_installs,
    stop_pantsd,
    wants_pantsd,
)


@pytest.mark.parametrize(
    ("command", "env", "wanted"),
    [
        (["package", "::"], {}, True),
        (["--no-pantsd", "test", "::"], {}, False),
        (["--pantsd=false", "--version"], {}, False),
        (["--version"], {"PANTS_PANTSD": "false"}, False),
        (["--version"], {"PANTS_PANTSD": "False"}, False),
        (["--version"], {"PANTS_PANTSD": "true"}, True),
    ],
)
def test_pantsd_starts_early_only_for_commands_that_use_it(
    command: list[str], env: dict[str, str], wanted: bool
) -> None:
    assert wants_pantsd(command, env) is wanted


def test_a_reinstall_first_stops_the_checkouts_pantsd(tmp_path: Path) -> None:
    """Its files are about to be replaced: left running, it would fail on its next run."""
    daemon = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        pid_file = tmp_path / ".pids/3f2a/pantsd/pid"
        pid_file.parent.mkdir(parents=True)
        pid_file.write_text(f"{daemon.pid}\n")
        # Our own child stays a zombie until waited for: don't wait for it to vanish.
        stop_pantsd(tmp_path, seconds=0)
        assert daemon.wait(timeout=5) == -signal.SIGTERM
        assert other.poll() is None
    finally:
        for process in (daemon, other):
            process.kill()
            process.wait()


def test_no_pantsd_is_nothing_to_stop(tmp_path: Path) -> None:
    stop_pantsd(tmp_path)
    (tmp_path / ".pids/x/pantsd").mkdir(parents=True)
    (tmp_path / ".pids/x/pantsd/pid").write_text("not a pid\n")
    stop_pantsd(tmp_path)


def _install(root: Path, name: str, days_old: float, ready: bool = True) -> Path:
    path = root / name
    path.mkdir()
    made = time.time() - days_old * 86400
    if ready:
        (path / "ready").touch()
        os.utime(path / "ready", (made, made))
    os.utime(path, (made, made))
    return path


def test_old_installs_nothing_runs_from_are_removed(tmp_path: Path) -> None:
    current = _install(tmp_path, "0123456789abcdef", days_old=90)
    old = _install(tmp_path, "1111111111111111", days_old=45)
    running = _install(tmp_path, "2222222222222222", days_old=45)
    recent = _install(tmp_path, "3333333333333333", days_old=3)
    half_done = _install(tmp_path, "4444444444444444", days_old=40, ready=False)
    old_uv = _install(tmp_path, "uv-5555555555555555", days_old=60)
    _install(tmp_path, "uv-cache", days_old=90)  # uv's own cache: not an install
    stale = stale_installs(tmp_path, keep={current.name}, in_use={running.name}, now=time.time())
    assert stale == [old, half_done, old_uv]
    assert recent not in stale


def test_what_a_process_has_mapped_is_in_use(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self/maps").write_text("")
    (proc / "41").mkdir()
    engine = f"{cache}/2222222222222222/venv/lib/python3.9/site-packages/pants/engine/internals/native_engine.so"
    (proc / "41/maps").write_text(
        f"7f00-7f10 r-xp 00000000 08:01 1234   {engine}\n"
        "7f10-7f20 rw-p 00000000 00:00 0\n"
        "7f20-7f30 r--p 00000000 08:01 99   /usr/lib/libc.so.6\n"
    )
    assert installs_in_use(cache, proc) == {"2222222222222222"}
    # Where processes' mappings cannot be read, nothing counts as unused.
    assert installs_in_use(cache, tmp_path / "no-proc") is None
