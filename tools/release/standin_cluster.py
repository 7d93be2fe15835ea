"""A pretend cluster and a runner for the deploy tool's tests (deploy*_test.py).

`Cluster` drives kubectl_standin.py; `write_repo` and `commit` make a git repository
with services and a staging overlay; `Runner` runs workflow steps as GitHub's runner
does.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

import tools.release.__main__ as cli
from tools.release import catalog, gitrepo, kubectl_standin
from tools.release.deploy import DeploySettings, deploy
from tools.release.kube import Kubectl
from tools.release.manifest import Manifest, ServiceImage

SERVICES = ("alpha", "beta")
DIGEST_OLD = "sha256:" + "1" * 64
DIGEST_NEW = "sha256:" + "2" * 64
REPOSITORY = "registry.example/meridian"
NAMESPACE = "meridian-staging"
REPO_ROOT = Path(cli.__file__).resolve().parents[2]
BASH = shutil.which("bash") or "/bin/bash"
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
  ports: [{{name: http, port: 8000}}]
"""


def write_repo(
    root: Path,
    log_level: str,
    services: tuple[str, ...] = SERVICES,
    extra: dict[str, str] | None = None,
) -> None:
    """A repository with the services and a staging overlay with hashed ConfigMaps,
    labelled as the real base labels what it renders; `extra`: more resources of the
    overlay (file name -> YAML)."""
    overlay = root / "deployments/k8s/overlays/staging"
    overlay.mkdir(parents=True, exist_ok=True)
    for path in overlay.glob("*.yaml"):
        path.unlink()
    shutil.rmtree(root / "services", ignore_errors=True)
    for name in services:
        (root / "services" / name).mkdir(parents=True, exist_ok=True)
        (root / "services" / name / "BUILD").write_text("meridian_service()\n")
    catalog.write(root, services)
    for name in services:
        (overlay / f"{name}.yaml").write_text(SERVICE_TEMPLATE.format(name=name))
    for name, text in (extra or {}).items():
        (overlay / name).write_text(text)
    resources = [f"{name}.yaml" for name in services] + sorted(extra or {})
    generators = "".join(
        f"  - name: {name}-config\n    literals: [LOG_LEVEL={log_level}]\n" for name in services
    )
    (overlay / "kustomization.yaml").write_text(
        f"namespace: {NAMESPACE}\n"
        f"resources: [{', '.join(resources)}]\n"
        f"configMapGenerator:\n{generators}"
        "labels:\n"
        "  - pairs: {app.kubernetes.io/part-of: meridian, app.kubernetes.io/managed-by: kustomize}\n"
    )


def commit(root: Path, message: str) -> str:
    """Commits the repository as it is (a new repository the first time); its sha."""
    if not (root / ".git").exists():
        gitrepo.git(root, "init", "-q")
        (root / ".gitignore").write_text("/cluster.json*\n/deploy-state.json*\n/runner-temp/\n")
    gitrepo.git(root, "add", "-A")
    gitrepo.git(root, "commit", "-q", "--allow-empty", "-m", message)
    return gitrepo.git(root, "rev-parse", "HEAD")


class Cluster:
    def __init__(self, root: Path) -> None:
        self.state = root / "cluster.json"
        self.kubectl = root / "kubectl"
        real = shutil.which("kubectl")
        if real is None:
            raise RuntimeError("the real kubectl renders the overlays; it is not on PATH")
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

    def _change(self, change: Callable[[dict[str, Any]], None]) -> None:
        """Changes the state under the stand-in's own lock (a deploy may be running)."""
        with open(f"{self.state}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = self.read()
            change(state)
            self.state.write_text(json.dumps(state))

    def behave(self, **outcomes: Any) -> None:
        """Sets the outcomes by image (see kubectl_standin.py) and forgets the calls."""
        self._change(lambda state: state.update(behaviour=outcomes, calls=[]))

    def also_behave(self, **outcomes: Any) -> None:
        """Adds outcomes, keeping the calls (while a deploy runs)."""
        self._change(lambda state: state["behaviour"].update(outcomes))

    def calls(self, verb: str) -> list[list[str]]:
        return [call for call in self.read()["calls"] if verb in call]

    def deployment(self, name: str) -> dict[str, Any]:
        record: dict[str, Any] = self.read()["deployments"][f"{NAMESPACE}/{name}"]
        return record

    def keep_only_current_revisions(self) -> None:
        """As revisionHistoryLimit does to old ReplicaSets (here: all of them)."""

        def drop(state: dict[str, Any]) -> None:
            for record in state["deployments"].values():
                record["history"] = {str(record["revision"]): record["template"]}

        self._change(drop)

    def add_object(self, doc: dict[str, Any]) -> None:
        metadata = doc["metadata"]
        name = f"{doc['kind']}/{metadata['namespace']}/{metadata['name']}"
        self._change(lambda state: state["objects"].update({name: doc}))

    def objects(self) -> set[str]:
        state = self.read()
        return set(state["objects"]) | {f"Deployment/{name}" for name in state["deployments"]}

    def deploy_state(self, name: str = "deploy-state.json") -> dict[str, Any]:
        body: dict[str, Any] = json.loads((self.state.parent / name).read_text())
        return body

    def configmaps(self) -> set[str]:
        return {
            key.split("/")[-1] for key in self.read()["objects"] if key.startswith("ConfigMap/")
        }


def first_release(root: Path) -> tuple[Cluster, str]:
    """A repository with both services and a cluster running its first commit's release,
    all at DIGEST_OLD; that commit."""
    write_repo(root, log_level="INFO")
    first = commit(root, "first release")
    cluster = Cluster(root)
    deploy(
        settings(root, manifest(first, dict.fromkeys(SERVICES, DIGEST_OLD))),
        Kubectl(str(cluster.kubectl)),
    )
    return cluster, first


def template_image(record: dict[str, Any]) -> str:
    return str(record["template"]["spec"]["containers"][0]["image"])


def config_of(record: dict[str, Any]) -> str:
    return str(record["template"]["spec"]["containers"][0]["envFrom"][0]["configMapRef"]["name"])


def manifest(commit: str, digests: dict[str, str]) -> Manifest:
    return Manifest(
        commit=commit,
        services={
            name: ServiceImage(image=f"{REPOSITORY}/{name}@{digest}", revision=commit[:12])
            for name, digest in digests.items()
        },
    )


def settings(
    root: Path,
    release: Manifest,
    deadline: float = 60,
    rollback: float = 60,
    **more: Any,
) -> DeploySettings:
    return DeploySettings(
        environment="staging",
        repo=root,
        manifest=release,
        deadline_seconds=deadline,
        rollback_seconds=rollback,
        state_file=root / "deploy-state.json",
        smoke_seconds=5,
        **more,
    )


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
