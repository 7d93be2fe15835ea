"""The stand-ins against their contracts, with real git repositories, a real
interpreter and real files; only the runner's command files are read back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tools.ci_rehearsal.standins import (
    GIT,
    StandInError,
    Step,
    cache_restore,
    cache_save,
    checkout,
    download_artifact,
    setup_python,
    upload_artifact,
)


class Runner:
    """A job's environment: workspace, temp, tool cache and the command files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env: dict[str, str] = {
            "HOME": str(root / "home"),
            "GITHUB_WORKSPACE": str(root / "workspace"),
            "RUNNER_TOOL_CACHE": str(root / "toolcache"),
            "REHEARSAL_STATE": str(root / "state"),
            "REHEARSAL_CACHE": str(root / "cache"),
        }
        for name in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH", "GITHUB_STATE"):
            self.env[name] = str(root / name.lower())
            Path(self.env[name]).touch()
        for directory in ("home", "workspace"):
            (root / directory).mkdir()

    def step(self, **inputs: str) -> Step:
        env = dict(self.env)
        env.update(
            {f"INPUT_{name.replace('_', '-').upper()}": value for name, value in inputs.items()}
        )
        return Step(env)

    def commands(self, name: str) -> dict[str, str]:
        values = {}
        for line in Path(self.env[name]).read_text().splitlines():
            if "=" in line:
                key, value = line.split("=", 1)
                values[key] = value
        return values

    def paths(self) -> list[str]:
        return Path(self.env["GITHUB_PATH"]).read_text().split()


@pytest.fixture()
def runner(tmp_path: Path) -> Runner:
    return Runner(tmp_path)


def _git(*args: str, cwd: Path) -> str:
    identity = ("-c", "user.name=t", "-c", "user.email=t@example.invalid")
    return subprocess.run(
        [GIT, *identity, *args], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout.strip()


def _origin(tmp_path: Path) -> tuple[Path, list[str]]:
    source = tmp_path / "source"
    source.mkdir()
    _git("init", "-q", "--initial-branch=main", cwd=source)
    commits = []
    for number in range(3):
        (source / "file.txt").write_text(f"version {number}\n")
        _git("add", "file.txt", cwd=source)
        _git("commit", "-q", "-m", f"commit {number}", cwd=source)
        commits.append(_git("rev-parse", "HEAD", cwd=source))
    origin = tmp_path / "origin.git"
    _git("clone", "-q", "--bare", str(source), str(origin), cwd=tmp_path)
    return origin, commits


def test_checkout_full_history_at_the_events_commit(runner: Runner) -> None:
    origin, commits = _origin(runner.root)
    runner.env.update(
        {
            "REHEARSAL_ORIGIN": str(origin),
            "GITHUB_SHA": commits[1],
            "GITHUB_REF": "refs/pull/1/merge",
        }
    )
    workspace = Path(runner.env["GITHUB_WORKSPACE"])
    (workspace / "stale").write_text("from an earlier job")
    checkout(runner.step(fetch_depth="0"))
    assert (workspace / "file.txt").read_text() == "version 1\n"
    assert not (workspace / "stale").exists()
    # fetch-depth 0: every branch as origin/*, the whole history.
    assert _git("rev-parse", "origin/main", cwd=workspace) == commits[2]
    assert _git("rev-list", "--count", "HEAD", cwd=workspace) == "2"
    assert runner.commands("GITHUB_OUTPUT")["commit"] == commits[1]


def test_checkout_default_depth_is_one_commit_on_the_pushed_branch(runner: Runner) -> None:
    origin, commits = _origin(runner.root)
    runner.env.update(
        {"REHEARSAL_ORIGIN": str(origin), "GITHUB_SHA": commits[2], "GITHUB_REF": "refs/heads/main"}
    )
    checkout(runner.step(fetch_depth="1"))
    workspace = Path(runner.env["GITHUB_WORKSPACE"])
    assert _git("rev-parse", "--is-shallow-repository", cwd=workspace) == "true"
    assert _git("rev-parse", "--abbrev-ref", "HEAD", cwd=workspace) == "main"


def _pythons(runner: Runner) -> str:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    prefix = sys.base_prefix
    runner.env["REHEARSAL_PYTHONS"] = json.dumps({version: [f"{version}.99", prefix]})
    return version


def test_setup_python_without_update_environment_leaves_path_alone(runner: Runner) -> None:
    version = _pythons(runner)
    setup_python(runner.step(python_version=version, update_environment="false"))
    outputs = runner.commands("GITHUB_OUTPUT")
    cache = Path(runner.env["RUNNER_TOOL_CACHE"])
    assert outputs["python-version"] == f"{version}.99"
    assert outputs["python-path"].startswith(str(cache / f"Python/{version}.99/x64/bin/python"))
    assert (cache / f"Python/{version}.99/x64.complete").exists()
    assert runner.paths() == []
    assert runner.commands("GITHUB_ENV") == {}
    ran = subprocess.run(
        [outputs["python-path"], "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert ran.stdout.strip() == str(tuple(sys.version_info[:2]))


def test_setup_python_by_default_puts_it_on_path(runner: Runner) -> None:
    version = _pythons(runner)
    setup_python(runner.step(python_version=version, update_environment="true"))
    install = Path(runner.env["RUNNER_TOOL_CACHE"]) / f"Python/{version}.99/x64"
    assert str(install / "bin") in runner.paths()
    assert runner.commands("GITHUB_ENV")["pythonLocation"] == str(install)


def test_setup_python_of_a_version_this_machine_lacks_fails(runner: Runner) -> None:
    _pythons(runner)
    with pytest.raises(StandInError, match="python-version '2.7'"):
        setup_python(runner.step(python_version="2.7"))


def test_cache_misses_saves_then_restores_by_key_and_prefix(runner: Runner) -> None:
    home = Path(runner.env["HOME"])
    (home / ".cache/tool").mkdir(parents=True)
    (home / ".cache/tool/data").write_text("downloaded")
    first = runner.step(path="~/.cache/tool", key="tool-Linux-abc", restore_keys="tool-Linux-")
    cache_restore(first)
    assert runner.commands("GITHUB_OUTPUT")["cache-hit"] == "false"
    state = runner.commands("GITHUB_STATE")
    cache_save(Step({**first.env, **{f"STATE_{k}": v for k, v in state.items()}}))

    # A later job with an empty HOME: the exact key is a hit.
    (home / ".cache/tool/data").unlink()
    Path(runner.env["GITHUB_OUTPUT"]).write_text("")
    cache_restore(runner.step(path="~/.cache/tool", key="tool-Linux-abc"))
    assert (home / ".cache/tool/data").read_text() == "downloaded"
    assert runner.commands("GITHUB_OUTPUT")["cache-hit"] == "true"

    # Another key restores through restore-keys, but is no hit (and is saved after).
    Path(runner.env["GITHUB_OUTPUT"]).write_text("")
    cache_restore(
        runner.step(path="~/.cache/tool", key="tool-Linux-def", restore_keys="tool-Linux-")
    )
    outputs = runner.commands("GITHUB_OUTPUT")
    assert outputs["cache-hit"] == "false"
    assert outputs["cache-matched-key"] == "tool-Linux-abc"


def test_artifacts_round_trip_from_the_common_ancestor(runner: Runner) -> None:
    workspace = Path(runner.env["GITHUB_WORKSPACE"])
    for name in ("dist/coverage/python/coverage.xml", "dist/test/reports/a.xml"):
        (workspace / name).parent.mkdir(parents=True, exist_ok=True)
        (workspace / name).write_text(name)
    upload_artifact(runner.step(name="coverage", path="dist/coverage/python/\ndist/test/reports/"))
    download_artifact(runner.step(name="coverage", path=str(runner.root / "got")))
    assert (runner.root / "got/coverage/python/coverage.xml").read_text().endswith("coverage.xml")
    assert (runner.root / "got/test/reports/a.xml").exists()
    # v4+ artifacts are immutable within a run unless overwrite is asked for.
    with pytest.raises(StandInError, match="already exists"):
        upload_artifact(runner.step(name="coverage", path="dist/test/reports/"))
    upload_artifact(runner.step(name="coverage", path="dist/test/reports/", overwrite="true"))


def test_missing_files_follow_if_no_files_found(runner: Runner) -> None:
    upload_artifact(runner.step(name="none", path="nothing/here", if_no_files_found="ignore"))
    with pytest.raises(StandInError, match="No files were found"):
        upload_artifact(runner.step(name="none", path="nothing/here", if_no_files_found="error"))
    with pytest.raises(StandInError, match="Artifact not found for name: none"):
        download_artifact(runner.step(name="none"))
