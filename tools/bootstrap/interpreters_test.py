"""Where the CPythons are looked for, with real interpreters behind every candidate."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tools.bootstrap.interpreters import (
    PANTS,
    SERVICES,
    PythonNotFoundError,
    Wanted,
    candidates,
    find,
    tool_cache,
)

# The interpreter running these tests stands in for whichever version a test wants.
HERE = Wanted(sys.version_info.minor, "WANTED_PYTHON", "the tests")


def _shim(path: Path, target: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\nexec "{target}" "$@"\n')
    path.chmod(0o755)
    return path


def test_the_interpreter_itself_is_returned_not_a_shim(tmp_path: Path) -> None:
    shim = _shim(tmp_path / HERE.executable, sys.executable)
    found = find(HERE, {"WANTED_PYTHON": str(shim), "PATH": "", "HOME": str(tmp_path)})
    assert found == sys.executable


def test_an_interpreter_of_another_version_is_passed_over(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong" / HERE.executable
    wrong.parent.mkdir()
    wrong.write_text("#!/bin/sh\nexit 1\n")
    wrong.chmod(0o755)
    env = {"WANTED_PYTHON": str(wrong), "PATH": str(Path(sys.executable).parent)}
    assert find(HERE, {**env, "HOME": str(tmp_path)}) != str(wrong)


def test_setup_pythons_tool_cache_is_searched_newest_first(tmp_path: Path) -> None:
    """actions/setup-python with `update-environment: false` leaves PATH alone: its
    interpreter is only at <tool cache>/Python/<version>/<arch>/bin."""
    cache = tmp_path / "toolcache"
    older = cache / f"Python/{HERE.version}.2/x64/bin/{HERE.executable}"
    newer = cache / f"Python/{HERE.version}.18/x64/bin/{HERE.executable}"
    for path in (older, newer):
        path.parent.mkdir(parents=True)
        path.symlink_to(sys.executable)
    env = {"PATH": "", "HOME": str(tmp_path), "RUNNER_TOOL_CACHE": str(cache)}
    listed = candidates(HERE, env)
    assert listed.index(str(newer)) < listed.index(str(older))
    # A symlink in the tool cache is itself the interpreter's sys.executable.
    assert find(HERE, env) == str(newer)


def test_the_tool_cache_defaults_to_github_hosted_runners_place() -> None:
    # `sudo` clears RUNNER_TOOL_CACHE; the hosted runners' place is still searched.
    assert tool_cache({}) == "/opt/hostedtoolcache"
    assert tool_cache({"AGENT_TOOLSDIRECTORY": "/a"}) == "/a"
    assert tool_cache({"RUNNER_TOOL_CACHE": "/r", "AGENT_TOOLSDIRECTORY": "/a"}) == "/r"


def test_the_variable_comes_before_path_and_pyenv(tmp_path: Path) -> None:
    named = _shim(tmp_path / "named" / PANTS.executable, "/bin/false")
    env = {"PANTS_PYTHON": str(named), "PATH": "/usr/bin", "HOME": str(tmp_path)}
    assert candidates(PANTS, env)[0] == str(named)
    assert candidates(SERVICES, {"MERIDIAN_PYTHON": "/x/python3.11"})[0] == "/x/python3.11"


def test_none_found_names_the_variable_and_how_to_install(tmp_path: Path) -> None:
    missing = Wanted(99, "NOWHERE_PYTHON", "nothing")
    with pytest.raises(PythonNotFoundError) as error:
        find(
            missing,
            {"PATH": str(tmp_path), "HOME": str(tmp_path), "RUNNER_TOOL_CACHE": str(tmp_path)},
        )
    assert "CPython 3.99 (nothing)" in str(error.value)
    assert "NOWHERE_PYTHON" in str(error.value)
    assert "tool cache" in str(error.value)


def _cli(version: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "", "HOME": str(tmp_path), "RUNNER_TOOL_CACHE": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-m", "tools.bootstrap.interpreters", version],
        env={**env, "PYTHONPATH": str(Path.cwd())},
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_command_line_prints_the_interpreter_or_explains(tmp_path: Path) -> None:
    result = _cli("3.9", tmp_path)
    if result.returncode == 0:
        # Only the system's usual places are left; whatever answered must be 3.9.
        assert result.stdout.startswith(("/usr/", "/opt/homebrew/"))
    else:
        assert result.returncode == 1
        assert "PANTS_PYTHON" in result.stderr
    usage = _cli("2.7", tmp_path)
    assert usage.returncode == 2
    assert "3.9,3.11" in usage.stderr
