import subprocess
from pathlib import Path

import pytest

from bench.cache_demo.programs import executable
from bench.cache_demo.suite import SuiteRun, clone, pants_arguments, pants_environment, run_tee


def test_each_run_gets_empty_local_caches_and_none_of_the_callers_pants_settings() -> None:
    run = SuiteRun("run2", Path("/work/demo/run2"))
    caller = {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "PANTS_PYTHON": "/usr/bin/python3.9",
        "PANTS_CONFIG_FILES": "pants.ci.toml",
        "PANTS_REMOTE_CACHE_READ": "false",
        "PANTS_LOCAL_STORE_DIR": "/root/.cache/pants/lmdb_store",
    }
    assert pants_environment(caller, run) == {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "PANTS_PYTHON": "/usr/bin/python3.9",
        "PANTS_LOCAL_STORE_DIR": "/work/demo/run2/lmdb_store",
        "PANTS_NAMED_CACHES_DIR": "/work/demo/run2/named_caches",
    }


def test_pants_reads_and_writes_the_demo_server_without_a_daemon_and_prints_counters() -> None:
    args = pants_arguments(41234)
    assert args[-2:] == ["test", "::"]
    for flag in (
        "--no-pantsd",
        "--remote-cache-read",
        "--remote-cache-write",
        "--remote-store-address=grpc://127.0.0.1:41234",
        "--stats-log",
        "--no-dynamic-ui",
        "--colors=false",
    ):
        assert flag in args


def test_the_clone_is_at_the_commit_and_leaves_the_source_alone(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()

    def git(*args: str) -> str:
        return subprocess.run(
            [
                executable("git"),
                "-C",
                str(source),
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.com",
                *args,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    git("init", "--quiet")
    (source / "BUILD").write_text("first\n")
    git("add", "BUILD")
    git("commit", "--quiet", "-m", "first")
    first = git("rev-parse", "HEAD")
    (source / "BUILD").write_text("second\n")
    git("commit", "--quiet", "-am", "second")

    clone(source, first, tmp_path / "clone")
    assert (tmp_path / "clone" / "BUILD").read_text() == "first\n"
    assert (source / "BUILD").read_text() == "second\n"
    assert git("status", "--porcelain") == ""


def test_output_goes_to_the_log_file_and_the_exit_status_is_returned(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    log_file = tmp_path / "pants.log"
    status = run_tee(
        ["sh", "-c", "echo out; echo err >&2; exit 3"],
        tmp_path,
        {"PATH": "/usr/bin:/bin"},
        log_file,
    )
    assert status == 3
    assert sorted(log_file.read_text().splitlines()) == ["err", "out"]
    assert sorted(capfdbinary.readouterr().out.splitlines()) == [b"err", b"out"]
