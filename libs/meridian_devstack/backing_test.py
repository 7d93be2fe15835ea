"""The local stack's backing servers where PostgreSQL's user cannot reach the checkout."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from meridian_devstack.backing import RELOCATED_ROOT, postgres_workdir, relocated_workdir
from meridian_testing.process import child_environment
from meridian_testing.servers import PostgresServer, ServerError, free_port, postgres_user


def test_a_failing_initdb_shows_its_own_error() -> None:
    # Not under pytest's tmp_path: under root, PostgreSQL's user must reach it.
    server = PostgresServer(free_port(), Path(tempfile.mkdtemp(prefix="meridian-initdb-")))
    server.workdir.chmod(0o755)
    try:
        server.datadir.mkdir()
        (server.datadir / "leftover").write_text("not a database\n")
        with pytest.raises(ServerError) as error:
            server.prepare()
    finally:
        shutil.rmtree(server.workdir)
    assert "initdb failed with exit code 1" in str(error.value)
    assert "exists but is not empty" in str(error.value)


@pytest.mark.skipif(os.geteuid() != 0, reason="PostgreSQL runs as another user only under root")
def test_under_root_a_private_directory_is_named_with_what_to_do(tmp_path: Path) -> None:
    private = tmp_path / "home"
    private.mkdir(mode=0o700)
    with pytest.raises(ServerError) as error:
        PostgresServer(free_port(), private / "postgres").prepare()
    assert f"PostgreSQL runs as `{postgres_user()}` (it refuses root), which cannot enter" in str(
        error.value
    )
    # The first directory it cannot enter: pytest's own, or `private` within it.
    assert re.search(
        r"\(mode 700\): put its data elsewhere, e.g. under \S+, or `chmod o\+x /", str(error.value)
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="PostgreSQL runs as another user only under root")
def test_make_runs_postgres_works_from_a_clone_in_a_private_directory(tmp_path: Path) -> None:
    clone = tmp_path / "private" / "clone"
    clone.mkdir(parents=True)
    (tmp_path / "private").chmod(0o700)
    data = clone / ".local" / "postgres"
    port = free_port()
    argv = [sys.executable, "-m", "meridian_devstack.backing", "postgres", "--port", str(port)]
    backing = subprocess.Popen(
        [*argv, "--data", str(data), "--database", "ledger"],
        cwd=clone,
        env=child_environment({}),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    relocated = None
    try:
        assert backing.stdout is not None
        notice, listening = backing.stdout.readline(), backing.stdout.readline()
        print(notice + listening)
        assert notice.startswith(f"postgres: its user `{postgres_user()}` cannot enter ")
        assert listening.startswith(f"postgres listening on 127.0.0.1:{port}")
        relocated = data.resolve()
        assert data.is_symlink()
        assert relocated.parent == RELOCATED_ROOT
        psql = shutil.which("psql")
        assert psql is not None
        databases = subprocess.run(
            [psql, f"postgresql://meridian@127.0.0.1:{port}/ledger", "-tAc", "SELECT 1"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert databases.stdout.strip() == "1", databases.stderr
    finally:
        backing.send_signal(signal.SIGTERM)
        backing.wait(30)
        if relocated is not None:
            shutil.rmtree(relocated, ignore_errors=True)
    assert backing.returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="PostgreSQL runs as another user only under root")
def test_a_relocation_directory_someone_else_made_is_refused(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    requested = private / ".local" / "postgres"
    planted = relocated_workdir(requested)
    planted.mkdir(mode=0o777)
    try:
        with pytest.raises(ServerError, match="is not a private directory of root or"):
            postgres_workdir(requested)
    finally:
        planted.rmdir()


@pytest.mark.skipif(os.geteuid() != 0, reason="PostgreSQL runs as another user only under root")
def test_a_fresh_clone_without_its_data_directory_keeps_it_in_place() -> None:
    # A clone anyone may enter, before anything made .local/ (make run's first start).
    clone = Path(tempfile.mkdtemp(dir="/var/tmp"))
    try:
        clone.chmod(0o755)
        requested = clone / ".local" / "postgres"
        assert postgres_workdir(requested) == requested
        assert requested.parent.is_dir()
    finally:
        shutil.rmtree(clone)
