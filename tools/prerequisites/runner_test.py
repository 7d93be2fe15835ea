"""The CI entry points that run before Pants exists, in an environment shaped like
GitHub's ubuntu-24.04 runner rather than this machine: a HOME without pyenv, a PATH
without python3.9, the Pythons only where actions/setup-python puts them (3.11 in the
tool cache and on PATH; 3.9 in the tool cache only, `update-environment: false`), and
`sudo` resetting the environment as Ubuntu's default policy does. Each test runs the
command the workflow runs, so a workflow or script change that breaks the pull request
path fails here rather than on GitHub."""

from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tools.bootstrap.interpreters import PANTS, SERVICES, Wanted, find

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BASH = shutil.which("bash", path=SYSTEM_PATH) or "/bin/bash"
WORKFLOWS = (Path(".github/workflows/ci.yml"), Path(".github/workflows/relock.yml"))
# sudo's default policy on Ubuntu: env_reset (only a few variables survive) and
# secure_path replacing PATH. What a step needs must be passed with `sudo env NAME=...`.
SUDO = """#!/bin/sh
exec env -i "PATH={secure_path}" "HOME={home}" "USER=root" "LOGNAME=root" "SHELL=/bin/bash" "$@"
"""


def _real(wanted: Wanted) -> str:
    """This machine's interpreter, wherever it is (pyenv here, the tool cache on GitHub)."""
    env = {**os.environ, "HOME": pwd.getpwuid(os.getuid()).pw_dir}
    env.setdefault("PATH", SYSTEM_PATH)
    return find(wanted, env)


@dataclass(frozen=True)
class Runner:
    root: Path
    env: dict[str, str]

    @property
    def tool_cache(self) -> Path:
        return self.root / "toolcache"


def _install(cache: Path, wanted: Wanted, real: str, names: tuple[str, ...]) -> Path:
    """What setup-python leaves: <cache>/Python/<version>/x64/bin/<names>."""
    bin_dir = cache / f"Python/{wanted.version}.99/x64/bin"
    bin_dir.mkdir(parents=True)
    for name in names:
        (bin_dir / name).symlink_to(real)
    return bin_dir


@pytest.fixture()
def runner(tmp_path: Path) -> Runner:
    if shutil.which(PANTS.executable, path=SYSTEM_PATH):
        pytest.skip(f"this machine has {PANTS.executable} on the system PATH, unlike the runner")
    home = tmp_path / "home"
    home.mkdir()
    cache = tmp_path / "toolcache"
    py311 = _install(cache, SERVICES, _real(SERVICES), ("python", "python3", SERVICES.executable))
    py39 = _install(cache, PANTS, _real(PANTS), (PANTS.executable,))
    sudo_dir = tmp_path / "sudo"
    sudo_dir.mkdir()
    sudo = sudo_dir / "sudo"
    sudo.write_text(SUDO.format(secure_path=SYSTEM_PATH, home=home))
    sudo.chmod(0o755)
    env = {
        "HOME": str(home),
        # setup-python 3.11 (update-environment: true) prepends its bin directory.
        "PATH": f"{sudo_dir}:{py311}:{SYSTEM_PATH}",
        "RUNNER_TOOL_CACHE": str(cache),
        "RUNNER_TEMP": str(tmp_path / "temp"),
        # setup-pants writes this to GITHUB_ENV from setup-python's python-path output.
        "PANTS_PYTHON": str(py39 / PANTS.executable),
        "LANG": "C.UTF-8",
    }
    return Runner(tmp_path, env)


def _prerequisite_steps() -> list[tuple[str, str]]:
    steps = []
    for workflow in WORKFLOWS:
        jobs = yaml.safe_load(workflow.read_text())["jobs"]
        for job in jobs.values():
            for step in job.get("steps", []):
                for line in str(step.get("run", "")).splitlines():
                    if "tools/prerequisites.sh" in line:
                        steps.append((f"{workflow.name}: {step.get('name')}", line.strip()))
    return steps


def _run(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BASH, "-c", command], env=env, capture_output=True, text=True, check=False, timeout=120
    )


def _found(output: str, name: str) -> str | None:
    match = re.search(rf"^  ok +{re.escape(name)} +(\S+)$", output, re.MULTILINE)
    return match.group(1) if match else None


def test_the_workflows_install_prerequisites_with_the_pythons_they_set_up() -> None:
    assert len(_prerequisite_steps()) >= 2, "ci.yml's test job and relock.yml check prerequisites"


@pytest.mark.parametrize(("where", "command"), _prerequisite_steps())
def test_the_prerequisites_step_finds_setup_pythons_interpreters(
    runner: Runner, where: str, command: str
) -> None:
    # As the step runs it, reporting only: nothing is installed by a test.
    result = _run(
        command.replace("tools/prerequisites.sh", "tools/prerequisites.sh --check"), runner.env
    )
    output = result.stderr
    assert "missing  python3" not in output, f"{where}: {command}\n{output}"
    assert str(_found(output, PANTS.executable)).startswith(str(runner.tool_cache)), output
    assert str(_found(output, SERVICES.executable)).startswith(str(runner.tool_cache)), output


def test_without_setup_pythons_39_the_check_fails_and_says_so(runner: Runner) -> None:
    env = {**runner.env, "RUNNER_TOOL_CACHE": str(runner.root / "empty")}
    del env["PANTS_PYTHON"]
    result = _run("tools/prerequisites.sh --check", env)
    assert result.returncode == 1
    assert "missing  python3.9 (runs Pants 2.17)" in result.stderr


def test_the_tool_cache_alone_is_enough_without_pants_python(runner: Runner) -> None:
    env = dict(runner.env)
    del env["PANTS_PYTHON"]
    result = _run("tools/prerequisites.sh --check", env)
    assert str(_found(result.stderr, PANTS.executable)).startswith(str(runner.tool_cache))


def test_pants_finds_the_same_python_39_as_the_prerequisites_check(runner: Runner) -> None:
    """./pants looks with the same module, run the way ./pants runs it."""
    pants = Path("pants").read_text()
    assert "-m tools.bootstrap.interpreters 3.9" in pants
    for env in (runner.env, {k: v for k, v in runner.env.items() if k != "PANTS_PYTHON"}):
        found = _run("python3 -m tools.bootstrap.interpreters 3.9", env)
        assert found.returncode == 0, found.stderr
        check = _run("tools/prerequisites.sh --check", env)
        assert found.stdout.strip() == _found(check.stderr, PANTS.executable)


def test_the_audit_exports_the_locks_with_setup_pythons_311(runner: Runner) -> None:
    """audit.yml runs `python3.11 -m tools.audit export-requirements` before Pants exists."""
    result = _run("python3.11 -m tools.audit export-requirements", runner.env)
    assert result.returncode == 0, result.stderr
    assert re.search(r"^uvicorn==\S+$", result.stdout, re.MULTILINE), result.stdout[:500]


def test_a_workflow_that_drops_pants_python_through_sudo_is_caught(runner: Runner) -> None:
    """The defect this file exists for: `sudo env PATH=...` alone loses PANTS_PYTHON and
    the tool cache, so only GitHub-hosted runners' fixed place is left. Here that place
    is empty, as on any machine but a hosted runner."""
    result = _run('sudo env "PATH=${PATH}" tools/prerequisites.sh --check', runner.env)
    hosted = Path("/opt/hostedtoolcache").exists()
    assert ("missing  python3.9" in result.stderr) != hosted, shlex.quote(result.stderr)
