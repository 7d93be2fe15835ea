"""A deploy that is interrupted: signalled, killed outright, or cancelled by the runner
(against the stand-in kubectl; see deploy_test.py for what that does and does not show).

The runner's cancel is reproduced as actions/runner does it: the step's script runs as
`bash -eo pipefail FILE`; on cancel only that process is signalled (SIGINT, then
SIGTERM), then killed (SIGKILL), never its process group; then the job's `cancelled()`
step runs. The scripts run are the workflow's own steps, read from action.yml and ci.yml.
What it cannot show: the real runner's timing between those signals (7.5 s and 2.5 s in
actions/runner today), which these tests do not depend on.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import tools.release.__main__ as cli
from tools.release.deploy import rollback_from_state
from tools.release.kube import Kubectl
from tools.release.render import RELEASE_ANNOTATION
from tools.release.standin_cluster import (
    CANCEL_STEP,
    DEPLOY_STEP,
    DIGEST_NEW,
    DIGEST_OLD,
    REPOSITORY,
    SERVICES,
    Cluster,
    Runner,
    alive,
    commit,
    config_of,
    first_release,
    manifest,
    step_script,
    template_image,
    write_repo,
)

ALPHA_NEW = f"{REPOSITORY}/alpha@{DIGEST_NEW}"
ALPHA_OLD = f"{REPOSITORY}/alpha@{DIGEST_OLD}"


@pytest.fixture()
def released(tmp_path: Path) -> tuple[Path, Cluster, str, str]:
    """A cluster running the first release; the first commit and a second one."""
    cluster, first = first_release(tmp_path)
    write_repo(tmp_path, log_level="DEBUG")
    second = commit(tmp_path, "second release")
    manifest(second, dict.fromkeys(SERVICES, DIGEST_NEW)).write(tmp_path / "manifest.json")
    return tmp_path, cluster, first, second


def assert_back_to(cluster: Cluster, first: str, state: str = "deploy-state.json") -> None:
    for name in SERVICES:
        record = cluster.deployment(name)
        assert template_image(record) == f"{REPOSITORY}/{name}@{DIGEST_OLD}"
        assert record["annotations"][RELEASE_ANNOTATION] == first
    assert cluster.deploy_state(state)["complete"] is True


def run_cli(root: Path, *arguments: str) -> subprocess.Popen[str]:
    code = (
        f"import sys; from pathlib import Path; import {cli.__name__} as cli; "
        f"cli.REPO = Path({str(root)!r}); sys.exit(cli.main(sys.argv[1:]))"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, *arguments],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def deploy_cli(root: Path, cluster: Cluster) -> subprocess.Popen[str]:
    return run_cli(
        root,
        "deploy",
        "--environment=staging",
        f"--manifest={root / 'manifest.json'}",
        f"--state={root / 'deploy-state.json'}",
        "--deadline=300",
        "--rollback-timeout=60",
        f"--kubectl={cluster.kubectl}",
    )


def until(condition: str, check: Callable[[], bool], child: subprocess.Popen[str]) -> None:
    for _ in range(1200):
        if check():
            return
        time.sleep(0.1)
    child.kill()
    pytest.fail(f"never {condition}: {child.communicate()[0]}")


def watching(cluster: Cluster) -> bool:
    """The deploy applied and watches the rollouts."""
    return any("pod" in ",".join(call).split(",") for call in cluster.calls("get"))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_rolls_back(released: tuple[Path, Cluster, str, str], sig: signal.Signals) -> None:
    root, cluster, first, _ = released
    cluster.behave(**{ALPHA_NEW: "hang"})
    child = deploy_cli(root, cluster)
    until("watched the rollouts", lambda: watching(cluster), child)
    child.send_signal(sig)
    output, _ = child.communicate(timeout=60)
    assert child.returncode == 1, output
    assert f"{sig.name} received" in output
    assert_back_to(cluster, first)


def test_killed_deploy_is_rolled_back_from_its_state(
    released: tuple[Path, Cluster, str, str],
) -> None:
    root, cluster, first, _ = released
    cluster.behave(**{ALPHA_NEW: "hang"})
    child = deploy_cli(root, cluster)
    until("watched the rollouts", lambda: watching(cluster), child)
    child.kill()
    child.wait()
    assert not cluster.calls("replace")
    rollback = run_cli(
        root,
        "rollback",
        f"--state={root / 'deploy-state.json'}",
        "--rollback-timeout=60",
        f"--kubectl={cluster.kubectl}",
    )
    output, _ = rollback.communicate(timeout=60)
    assert rollback.returncode == 0, output
    assert_back_to(cluster, first)
    replaced = len(cluster.calls("replace"))
    assert replaced
    # A second run finds everything restored and changes nothing.
    rollback_from_state(root / "deploy-state.json", Kubectl(str(cluster.kubectl)), 60)
    assert len(cluster.calls("replace")) == replaced


def test_killed_in_the_middle_of_an_apply_its_apply_dies_too(
    released: tuple[Path, Cluster, str, str],
) -> None:
    root, cluster, first, _ = released
    cluster.behave(apply_seconds=6)
    child = deploy_cli(root, cluster)
    until("started applying", lambda: bool(cluster.calls("apply")), child)
    child.kill()  # this process only: its kubectl child gets SIGKILL from the kernel
    child.wait()
    rollback_from_state(root / "deploy-state.json", Kubectl(str(cluster.kubectl)), 60)
    time.sleep(8)  # past the moment the orphaned apply would have applied
    assert_back_to(cluster, first)
    assert cluster.deployment("alpha")["revision"] == 1


def start_deploy_step(root: Path, cluster: Cluster, runner: Runner) -> subprocess.Popen[str]:
    cluster.behave(**{ALPHA_NEW: "hang"})
    step = runner.start(
        step_script(Path(DEPLOY_STEP[0]), *DEPLOY_STEP[1:]),
        ENVIRONMENT="staging",
        MANIFEST=str(root / "manifest.json"),
        DEADLINE="300",
        ROLLBACK="120",
        VERSION="",
    )
    until("watched the rollouts", lambda: watching(cluster), step)
    return step


def test_cancelled_runner_step_is_rolled_back_once_the_deploy_is_gone(
    released: tuple[Path, Cluster, str, str],
) -> None:
    root, cluster, first, _ = released
    runner = Runner(root, cluster)
    step = start_deploy_step(root, cluster, runner)
    # The old alpha hangs too, so the runner's kill lands in the middle of the rollback,
    # during its wait for the restored rollouts.
    cluster.also_behave(**{ALPHA_OLD: "hang"})
    step.send_signal(signal.SIGINT)
    until("restored alpha", lambda: bool(cluster.calls("replace")), step)
    step.send_signal(signal.SIGTERM)
    time.sleep(1)
    assert step.poll() is None, "SIGTERM must not stop a rollback half-way"
    step.kill()  # SIGKILL to the step's process only
    output, _ = step.communicate()
    assert "SIGINT received" in output
    deploy_children = cluster.read()["pids"]
    cluster.behave()

    rollback = runner.start(step_script(Path(CANCEL_STEP[0]), *CANCEL_STEP[1:]), ROLLBACK="60")
    output, _ = rollback.communicate(timeout=120)
    assert rollback.returncode == 0, output
    assert not [pid for pid in deploy_children if alive(pid)]
    assert_back_to(cluster, first, "runner-temp/deploy-state.json")
    # What the deploy created (the new release's ConfigMaps) is gone.
    alpha_configs = {name for name in cluster.configmaps() if name.startswith("alpha-config-")}
    assert alpha_configs == {config_of(cluster.deployment("alpha"))}


def test_rollback_waits_while_the_deploy_runs(released: tuple[Path, Cluster, str, str]) -> None:
    root, cluster, _, _ = released
    runner = Runner(root, cluster)
    step = start_deploy_step(root, cluster, runner)
    try:
        rollback = runner.start(step_script(Path(CANCEL_STEP[0]), *CANCEL_STEP[1:]), ROLLBACK="3")
        output, _ = rollback.communicate(timeout=60)
    finally:
        step.kill()
        step.communicate()
    assert rollback.returncode == 1, output
    assert "deploy-state.json.lock is still locked after 3 s" in output
    assert not cluster.calls("replace"), "the rollback acted while the deploy was running"
    assert not cluster.calls("delete")
