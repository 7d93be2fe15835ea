"""The deploy tool against a stand-in kubectl (kubectl_standin.py), since no Kubernetes
cluster can run here.

What this shows: the tool's own decisions and calls. It renders the release with the
real `kubectl kustomize`, records revisions before applying, never passes --prune, waits
only for rollouts the apply started, checks /version through port-forward, and on a
failed rollout, a stale /version, its own deadline, SIGTERM or SIGINT, or after being
killed outright (`rollback --state`), issues `rollout undo --to-revision` for exactly the
Deployments it changed, which brings back the content-hashed ConfigMap they referenced.
Once a deploy has succeeded, it removes a removed service's objects and the ConfigMaps no
ReplicaSet names, and nothing the release does not own.

What it cannot show without a cluster: that a real API server, kubelet and ReplicaSet
controller behave as the stand-in models them (revision numbering, rollout status exit
codes and messages, port-forward picking a new pod), nor real RBAC, image pulls or
network policies. Those are exercised by the staging deploy itself.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

import tools.release.__main__ as cli
from tools.release import kubectl_standin
from tools.release.deploy import DeploySettings, deploy, rollback_from_state
from tools.release.errors import ReleaseError
from tools.release.kube import Kubectl
from tools.release.manifest import Manifest, ServiceImage

SERVICES = ("alpha", "beta")
DIGEST_OLD = "sha256:" + "1" * 64
DIGEST_NEW = "sha256:" + "2" * 64
REPOSITORY = "registry.example/meridian"
REPO_ROOT = Path(cli.__file__).resolve().parents[2]
BASH = shutil.which("bash") or "/bin/bash"
COMMIT_OLD = "a" * 40
COMMIT_NEW = "b" * 40

SERVICE_TEMPLATE = """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, labels: {{app.kubernetes.io/component: service}}}}
spec:
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
        - name: {name}
          image: meridian/{name}
          envFrom: [{{configMapRef: {{name: {name}-config}}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: 8080}}]
"""


def write_repo(root: Path, log_level: str, services: tuple[str, ...] = SERVICES) -> None:
    """A repository with the services and a staging overlay with hashed ConfigMaps,
    labelled as the real base labels what it renders."""
    overlay = root / "deployments/k8s/overlays/staging"
    overlay.mkdir(parents=True, exist_ok=True)
    for name in SERVICES:
        if name not in services:
            shutil.rmtree(root / "services" / name, ignore_errors=True)
            (overlay / f"{name}.yaml").unlink(missing_ok=True)
            continue
        (root / "services" / name).mkdir(parents=True, exist_ok=True)
        (root / "services" / name / "BUILD").write_text("meridian_service()\n")
        (overlay / f"{name}.yaml").write_text(SERVICE_TEMPLATE.format(name=name))
    generators = "".join(
        f"  - name: {name}-config\n    literals: [LOG_LEVEL={log_level}]\n" for name in services
    )
    (overlay / "kustomization.yaml").write_text(
        "namespace: meridian-staging\n"
        f"resources: [{', '.join(f'{name}.yaml' for name in services)}]\n"
        f"configMapGenerator:\n{generators}"
        "labels:\n"
        "  - pairs: {app.kubernetes.io/part-of: meridian, app.kubernetes.io/managed-by: kustomize}\n"
    )


class Cluster:
    def __init__(self, root: Path) -> None:
        self.state = root / "cluster.json"
        self.kubectl = root / "kubectl"
        real = shutil.which("kubectl")
        assert real, "the real kubectl renders the overlays; it is not on PATH"
        environment = {
            "STANDIN_STATE": str(self.state),
            "STANDIN_REAL_KUBECTL": real,
            "PYTHONPATH": os.pathsep.join(sys.path),
        }
        exports = "".join(f"export {name}='{value}'\n" for name, value in environment.items())
        self.kubectl.write_text(
            f"#!/bin/sh\n{exports}exec '{sys.executable}' '{kubectl_standin.__file__}' \"$@\"\n"
        )
        self.kubectl.chmod(0o755)

    def read(self) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self.state.read_text())
        return body

    def behave(self, **outcomes: Any) -> None:
        state = self.read()
        state["behaviour"] = outcomes
        state["calls"] = []
        self.state.write_text(json.dumps(state))

    def calls(self, verb: str) -> list[list[str]]:
        return [call for call in self.read()["calls"] if verb in call]

    def deployment(self, name: str) -> dict[str, Any]:
        record: dict[str, Any] = self.read()["deployments"][f"meridian-staging/{name}"]
        return record

    def keep_only_current_revisions(self) -> None:
        """As revisionHistoryLimit does to old ReplicaSets (here: all of them)."""
        state = self.read()
        for record in state["deployments"].values():
            record["history"] = {str(record["revision"]): record["template"]}
        self.state.write_text(json.dumps(state))

    def add_object(self, doc: dict[str, Any]) -> None:
        state = self.read()
        metadata = doc["metadata"]
        state["objects"][f"{doc['kind']}/{metadata['namespace']}/{metadata['name']}"] = doc
        self.state.write_text(json.dumps(state))

    def objects(self) -> set[str]:
        state = self.read()
        return set(state["objects"]) | {f"Deployment/{name}" for name in state["deployments"]}

    def configmaps(self) -> set[str]:
        return {
            key.split("/")[-1] for key in self.read()["objects"] if key.startswith("ConfigMap/")
        }


def manifest(commit: str, digests: dict[str, str]) -> Manifest:
    return Manifest(
        commit=commit,
        services={
            name: ServiceImage(image=f"{REPOSITORY}/{name}@{digest}", revision=commit[:12])
            for name, digest in digests.items()
        },
    )


def settings(
    root: Path, release: Manifest, deadline: float = 60, rollback: float = 60
) -> DeploySettings:
    return DeploySettings(
        environment="staging",
        repo=root,
        manifest=release,
        deadline_seconds=deadline,
        rollback_seconds=rollback,
        state_file=root / "deploy-state.json",
        smoke_seconds=5,
    )


@pytest.fixture()
def released(tmp_path: Path) -> tuple[Path, Cluster]:
    """A cluster running the old release of both services."""
    write_repo(tmp_path, log_level="INFO")
    cluster = Cluster(tmp_path)
    deploy(
        settings(tmp_path, manifest(COMMIT_OLD, dict.fromkeys(SERVICES, DIGEST_OLD))),
        Kubectl(str(cluster.kubectl)),
    )
    return tmp_path, cluster


def template_image(record: dict[str, Any]) -> str:
    return str(record["template"]["spec"]["containers"][0]["image"])


def config_of(record: dict[str, Any]) -> str:
    return str(record["template"]["spec"]["containers"][0]["envFrom"][0]["configMapRef"]["name"])


def test_first_deploy_pins_digests_and_revisions(released: tuple[Path, Cluster]) -> None:
    _, cluster = released
    for name in SERVICES:
        record = cluster.deployment(name)
        assert template_image(record) == f"{REPOSITORY}/{name}@{DIGEST_OLD}"
        env = {e["name"]: e["value"] for e in record["template"]["spec"]["containers"][0]["env"]}
        assert env["MERIDIAN_BUILD_REVISION"] == COMMIT_OLD[:12]
        assert env["MERIDIAN_BUILD_VERSION"] == f"0.0.0-dev.g{COMMIT_OLD[:12]}"
        assert record["annotations"]["meridian.dev/release-commit"] == COMMIT_OLD
    applies = cluster.calls("apply")
    assert applies
    assert not [call for call in applies if any(word.startswith("--prune") for word in call)]


def test_unchanged_service_is_not_rolled(released: tuple[Path, Cluster]) -> None:
    root, cluster = released
    cluster.behave()
    # beta keeps its entry (digest and revision) from the previous manifest.
    release = Manifest(
        commit=COMMIT_NEW,
        services={
            "alpha": ServiceImage(f"{REPOSITORY}/alpha@{DIGEST_NEW}", COMMIT_NEW[:12]),
            "beta": ServiceImage(f"{REPOSITORY}/beta@{DIGEST_OLD}", COMMIT_OLD[:12]),
        },
    )
    deploy(settings(root, release), Kubectl(str(cluster.kubectl)))
    assert cluster.deployment("alpha")["revision"] == 2
    assert cluster.deployment("beta")["revision"] == 1
    waited = [call[-2] for call in cluster.calls("status")]
    assert waited == ["deployment/alpha"]
    # Both services' /version were checked, the unchanged one included.
    assert {call[-2] for call in cluster.calls("port-forward")} == {"service/alpha", "service/beta"}


def assert_rolled_back(cluster: Cluster) -> None:
    undos = cluster.calls("undo")
    assert sorted(call[4] for call in undos) == ["deployment/alpha", "deployment/beta"]
    assert all(call[-1] == "--to-revision=1" for call in undos)
    for name in SERVICES:
        assert template_image(cluster.deployment(name)) == f"{REPOSITORY}/{name}@{DIGEST_OLD}"
    state = json.loads((cluster.state.parent / "deploy-state.json").read_text())
    assert state["complete"] is True


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        pytest.param(
            {f"{REPOSITORY}/alpha@{DIGEST_NEW}": "fail"},
            "exceeded its progress deadline.*rolled back",
            id="failed rollout",
        ),
        pytest.param(
            {"stale_version": ["beta"]},
            "beta: /version reports revision '000000000000'",
            id="stale version",
        ),
    ],
)
def test_a_failed_deploy_rolls_back(
    released: tuple[Path, Cluster], behaviour: dict[str, Any], reason: str
) -> None:
    root, cluster = released
    cluster.behave(**behaviour)
    with pytest.raises(ReleaseError, match=reason):
        deploy(
            settings(root, manifest(COMMIT_NEW, dict.fromkeys(SERVICES, DIGEST_NEW))),
            Kubectl(str(cluster.kubectl)),
        )
    assert_rolled_back(cluster)


def test_config_rolls_back_with_the_deployment(released: tuple[Path, Cluster]) -> None:
    root, cluster = released
    old_config = config_of(cluster.deployment("alpha"))
    write_repo(root, log_level="DEBUG")  # new content, new hashed ConfigMap name
    cluster.behave(**{f"{REPOSITORY}/alpha@{DIGEST_NEW}": "fail"})
    with pytest.raises(ReleaseError, match="rolled back"):
        deploy(
            settings(root, manifest(COMMIT_NEW, dict.fromkeys(SERVICES, DIGEST_NEW))),
            Kubectl(str(cluster.kubectl)),
        )
    assert config_of(cluster.deployment("alpha")) == old_config
    # The new release's ConfigMap was applied and the old one was never deleted.
    assert old_config in cluster.configmaps()
    assert len([name for name in cluster.configmaps() if name.startswith("alpha-config-")]) == 2


def test_own_deadline_rolls_back(released: tuple[Path, Cluster]) -> None:
    root, cluster = released
    cluster.behave(**{f"{REPOSITORY}/beta@{DIGEST_NEW}": "hang"})
    started = time.monotonic()
    with pytest.raises(ReleaseError, match="rolled back"):
        deploy(
            settings(root, manifest(COMMIT_NEW, dict.fromkeys(SERVICES, DIGEST_NEW)), deadline=8),
            Kubectl(str(cluster.kubectl)),
        )
    # The hanging rollout was waited for no longer than the deadline allowed, and the
    # whole deploy ended well before the stand-in's rollout would have (it never does).
    calls = cluster.read()["calls"]
    first_undo = next(index for index, call in enumerate(calls) if "undo" in call)
    waits = [
        int(call[-1].removeprefix("--timeout=").rstrip("s"))
        for call in calls[:first_undo]
        if "status" in call
    ]
    assert waits
    assert max(waits) <= 8
    assert time.monotonic() - started < 8 + 90
    assert_rolled_back(cluster)


def run_cli(root: Path, cluster: Cluster, *arguments: str) -> subprocess.Popen[str]:
    release = root / "manifest.json"
    manifest(COMMIT_NEW, dict.fromkeys(SERVICES, DIGEST_NEW)).write(release)
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
        # Its own process group, so that killing it "outright" takes its kubectl calls
        # with it, as a runner cancelling a job does; nothing is left waiting afterwards.
        start_new_session=True,
    )


def kill_outright(child: subprocess.Popen[str]) -> None:
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()


def deploy_until_waiting(root: Path, cluster: Cluster) -> subprocess.Popen[str]:
    cluster.behave(**{f"{REPOSITORY}/alpha@{DIGEST_NEW}": "hang"})
    child = run_cli(
        root,
        cluster,
        "deploy",
        "--environment=staging",
        f"--manifest={root / 'manifest.json'}",
        f"--state={root / 'deploy-state.json'}",
        "--deadline=300",
        "--rollback-timeout=60",
        f"--kubectl={cluster.kubectl}",
    )
    for _ in range(1200):
        if cluster.calls("status"):
            return child
        time.sleep(0.1)
    kill_outright(child)
    pytest.fail(f"the deploy never waited for a rollout: {child.communicate()[0]}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_rolls_back(released: tuple[Path, Cluster], sig: signal.Signals) -> None:
    root, cluster = released
    child = deploy_until_waiting(root, cluster)
    child.send_signal(sig)
    output, _ = child.communicate(timeout=60)
    assert child.returncode == 1, output
    assert f"{sig.name} received" in output
    assert_rolled_back(cluster)


def test_killed_deploy_is_rolled_back_from_its_state(released: tuple[Path, Cluster]) -> None:
    root, cluster = released
    child = deploy_until_waiting(root, cluster)
    kill_outright(child)
    assert not cluster.calls("undo")
    rollback = run_cli(
        root,
        cluster,
        "rollback",
        f"--state={root / 'deploy-state.json'}",
        "--rollback-timeout=60",
        f"--kubectl={cluster.kubectl}",
    )
    output, _ = rollback.communicate(timeout=60)
    assert rollback.returncode == 0, output
    assert_rolled_back(cluster)
    # A second run finds the rollback done and changes nothing.
    rollback_from_state(root / "deploy-state.json", Kubectl(str(cluster.kubectl)), 60)
    assert len(cluster.calls("undo")) == 2


def test_manifest_must_pin_every_service(tmp_path: Path) -> None:
    write_repo(tmp_path, log_level="INFO")
    cluster = Cluster(tmp_path)
    with pytest.raises(
        ReleaseError, match=r"lists \['alpha'\], the repository's services are \['alpha', 'beta'\]"
    ):
        deploy(
            settings(tmp_path, manifest(COMMIT_OLD, {"alpha": DIGEST_OLD})),
            Kubectl(str(cluster.kubectl)),
        )
    assert not cluster.state.exists(), "nothing may be called before the inputs are checked"


def test_rollback_killed_midway_is_finished_without_a_second_undo(
    released: tuple[Path, Cluster],
) -> None:
    root, cluster = released
    old_alpha = f"{REPOSITORY}/alpha@{DIGEST_OLD}"
    child = deploy_until_waiting(root, cluster)
    state_file = root / "deploy-state.json"
    # The rollback's own wait hangs too, so the process is killed in the middle of it.
    body = cluster.read()
    body["behaviour"][old_alpha] = "hang"
    cluster.state.write_text(json.dumps(body))
    child.send_signal(signal.SIGTERM)
    for _ in range(1200):
        if len(json.loads(state_file.read_text())["undone"]) == 2:
            break
        time.sleep(0.1)
    kill_outright(child)
    state = json.loads(state_file.read_text())
    assert sorted(state["undone"]) == ["meridian-staging/alpha", "meridian-staging/beta"]
    assert state["complete"] is False
    cluster.behave()
    rollback_from_state(state_file, Kubectl(str(cluster.kubectl)), 60)
    # An undo renumbers the revision it restores: issuing it again would fail.
    assert not cluster.calls("undo")
    assert {call[-2] for call in cluster.calls("status")} == {"deployment/alpha", "deployment/beta"}
    assert json.loads(state_file.read_text())["complete"] is True
    for name in SERVICES:
        assert template_image(cluster.deployment(name)) == f"{REPOSITORY}/{name}@{DIGEST_OLD}"


def test_release_version_form_is_checked_first(tmp_path: Path) -> None:
    write_repo(tmp_path, log_level="INFO")
    cluster = Cluster(tmp_path)
    release = manifest(COMMIT_OLD, dict.fromkeys(SERVICES, DIGEST_OLD))
    bad = dataclasses.replace(settings(tmp_path, release), release_version="v1.2")
    with pytest.raises(ReleaseError, match="--release-version 'v1.2' is not X.Y.Z"):
        deploy(bad, Kubectl(str(cluster.kubectl)))
    assert not cluster.state.exists()


def test_config_no_replica_set_can_return_to_is_removed_after_a_successful_deploy(
    released: tuple[Path, Cluster],
) -> None:
    root, cluster = released
    first = config_of(cluster.deployment("alpha"))
    kubectl = Kubectl(str(cluster.kubectl))
    write_repo(root, log_level="DEBUG")
    deploy(settings(root, manifest(COMMIT_NEW, dict.fromkeys(SERVICES, DIGEST_NEW))), kubectl)
    second = config_of(cluster.deployment("alpha"))
    # Revision 1's ReplicaSet still names the first ConfigMap: `rollout undo` needs it.
    assert {first, second} <= cluster.configmaps()

    cluster.keep_only_current_revisions()
    write_repo(root, log_level="WARNING")
    deploy(settings(root, manifest(COMMIT_OLD, dict.fromkeys(SERVICES, DIGEST_OLD))), kubectl)
    third = config_of(cluster.deployment("alpha"))
    alpha_configs = {name for name in cluster.configmaps() if name.startswith("alpha-config-")}
    # The first is gone; the second is still named by revision 2's ReplicaSet.
    assert alpha_configs == {second, third}
    deletes = cluster.calls("delete")
    assert ["-n", "meridian-staging", "delete", "configmap", first] == deletes[0][:5]
    assert all("--wait=false" in call for call in deletes)


def test_a_removed_service_goes_only_once_a_deploy_without_it_succeeded(
    released: tuple[Path, Cluster],
) -> None:
    root, cluster = released
    beta = {"Deployment/meridian-staging/beta", "Service/meridian-staging/beta"}
    beta_config = config_of(cluster.deployment("beta"))
    kubectl = Kubectl(str(cluster.kubectl))
    write_repo(root, log_level="INFO", services=("alpha",))
    cluster.behave(**{f"{REPOSITORY}/alpha@{DIGEST_NEW}": "fail"})
    with pytest.raises(ReleaseError, match="rolled back"):
        deploy(settings(root, manifest(COMMIT_NEW, {"alpha": DIGEST_NEW})), kubectl)
    assert beta <= cluster.objects()
    assert not cluster.calls("delete")

    cluster.behave()
    deploy(settings(root, manifest(COMMIT_NEW, {"alpha": DIGEST_NEW})), kubectl)
    assert not beta & cluster.objects()
    # Its ConfigMap went with it: only the removed Deployment's ReplicaSets named it.
    assert beta_config not in cluster.configmaps()
    # Its pods go before the configuration they name.
    deleted = [call[3] for call in cluster.calls("delete")]
    assert deleted[0] == "deployment"
    assert "Deployment/meridian-staging/alpha" in cluster.objects()


def test_what_the_release_does_not_own_is_never_removed(released: tuple[Path, Cluster]) -> None:
    root, cluster = released
    # Credentials made outside the release, and a ConfigMap someone added by hand.
    cluster.add_object(
        {
            "kind": "Secret",
            "metadata": {
                "name": "alpha-credentials",
                "namespace": "meridian-staging",
                "labels": {"app.kubernetes.io/part-of": "meridian"},
            },
        }
    )
    cluster.add_object(
        {"kind": "ConfigMap", "metadata": {"name": "notes", "namespace": "meridian-staging"}}
    )
    kubectl = Kubectl(str(cluster.kubectl))
    write_repo(root, log_level="DEBUG")
    deploy(settings(root, manifest(COMMIT_NEW, dict.fromkeys(SERVICES, DIGEST_NEW))), kubectl)
    cluster.keep_only_current_revisions()
    write_repo(root, log_level="WARNING")
    deploy(settings(root, manifest(COMMIT_OLD, dict.fromkeys(SERVICES, DIGEST_OLD))), kubectl)
    assert {"Secret/meridian-staging/alpha-credentials", "ConfigMap/meridian-staging/notes"} <= (
        cluster.objects()
    )
    # The prune ran (the old release's ConfigMaps went) and passed both by.
    deleted = {call[4] for call in cluster.calls("delete")}
    assert deleted
    assert not deleted & {"alpha-credentials", "notes"}


def step_script(workflow: Path, *path: str | int) -> str:
    """The `run:` text of a step, found by its path in the workflow's YAML."""
    node: Any = yaml.safe_load((REPO_ROOT / workflow).read_text())
    for key in path:
        if isinstance(key, str) and isinstance(node, list):
            node = next(item for item in node if item.get("name") == key)
        else:
            node = node[key]
    return str(node["run"])


class Runner:
    """Runs workflow steps as GitHub's runner does: `bash --noprofile --norc -eo pipefail
    FILE`, `python3` and `kubectl` from PATH (here: this test's repository and the
    stand-in). On cancel it signals only the step's process, SIGINT, then SIGTERM, then
    SIGKILL (actions/runner ProcessInvoker), never its process group."""

    def __init__(self, root: Path, cluster: Cluster) -> None:
        self.root = root
        bin_dir = root / "bin"
        bin_dir.mkdir(exist_ok=True)
        code = (
            f"import sys; from pathlib import Path; import {cli.__name__} as cli; "
            f"cli.REPO = Path({str(root)!r}); sys.exit(cli.main(sys.argv[1:]))"
        )
        # `python3 -m tools.release ARGS` runs the tool on this test's repository; each
        # exec keeps the process id, as on the runner.
        (bin_dir / "python3").write_text(
            f'#!/bin/sh\nshift 2\nexec \'{sys.executable}\' -c "{code}" "$@"\n'
        )
        (bin_dir / "python3").chmod(0o755)
        shutil.copy(cluster.kubectl, bin_dir / "kubectl")
        (root / "runner-temp").mkdir(exist_ok=True)
        self.env = {
            **os.environ,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "PYTHONPATH": os.pathsep.join(sys.path),
            "RUNNER_TEMP": str(root / "runner-temp"),
            "GITHUB_STEP_SUMMARY": str(root / "summary.md"),
        }

    def start(self, script: str, **env: str) -> subprocess.Popen[str]:
        path = self.root / f"step-{time.monotonic_ns()}.sh"
        path.write_text(script)
        return subprocess.Popen(
            [BASH, "--noprofile", "--norc", "-eo", "pipefail", str(path)],
            cwd=self.root,
            env={**self.env, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


DEPLOY_STEP = (
    ".github/actions/deploy/action.yml",
    "runs",
    "steps",
    "Deploy, verify, roll back on failure",
)
CANCEL_STEP = (
    ".github/workflows/ci.yml",
    "jobs",
    "staging",
    "steps",
    "Roll back a cancelled deploy",
)


def start_deploy_step(root: Path, cluster: Cluster, runner: Runner) -> subprocess.Popen[str]:
    release = root / "manifest.json"
    manifest(COMMIT_NEW, dict.fromkeys(SERVICES, DIGEST_NEW)).write(release)
    cluster.behave(**{f"{REPOSITORY}/alpha@{DIGEST_NEW}": "hang"})
    step = runner.start(
        step_script(Path(DEPLOY_STEP[0]), *DEPLOY_STEP[1:]),
        ENVIRONMENT="staging",
        MANIFEST=str(release),
        DEADLINE="300",
        ROLLBACK="120",
        VERSION="",
    )
    for _ in range(1200):
        if cluster.calls("status"):
            return step
        time.sleep(0.1)
    step.kill()
    pytest.fail(f"the deploy step never waited for a rollout: {step.communicate()[0]}")


def test_cancelled_runner_step_is_rolled_back_once_the_deploy_is_gone(
    released: tuple[Path, Cluster],
) -> None:
    root, cluster = released
    runner = Runner(root, cluster)
    step = start_deploy_step(root, cluster, runner)
    # The rollback's own wait hangs too, so the runner's kill lands in the middle of it.
    body = cluster.read()
    body["behaviour"][f"{REPOSITORY}/alpha@{DIGEST_OLD}"] = "hang"
    cluster.state.write_text(json.dumps(body))
    state_file = root / "runner-temp/deploy-state.json"
    step.send_signal(signal.SIGINT)
    for _ in range(1200):
        if len(json.loads(state_file.read_text())["undone"]) == 2:
            break
        time.sleep(0.1)
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
    # The killed deploy's kubectl calls (rollout waits that would have run for minutes)
    # died with it.
    assert not [pid for pid in deploy_children if alive(pid)]
    # Each undo was issued once (by the deploy); the rollback step only waited for them.
    assert not cluster.calls("undo")
    assert {call[-2] for call in cluster.calls("status")} == {"deployment/alpha", "deployment/beta"}
    assert json.loads(state_file.read_text())["complete"] is True
    for name in SERVICES:
        assert template_image(cluster.deployment(name)) == f"{REPOSITORY}/{name}@{DIGEST_OLD}"


def test_rollback_waits_while_the_deploy_runs(released: tuple[Path, Cluster]) -> None:
    root, cluster = released
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
    assert not cluster.calls("undo"), "the rollback acted while the deploy was running"
