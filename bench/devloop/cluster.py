"""The dev loop's rows on the cluster the current kube context names, through Tilt.

A scratch clone runs `tilt up` (its own API port); each row makes its edit there and
waits for what a developer waits for: the pod's log printing the edit's marker and
/health/ready answering 200 through Tilt's port-forward, a new pod after a BUILD edit,
every service's rollout after a ConfigMap value changed (and whether Tilt built an
image for it). `tilt ci` runs in a fresh clone with empty caches.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from bench.devloop.edits import BenchError, insert_marker, toggle_patch_value
from bench.devloop.stack import clean_environment, program
from meridian_devstack.health import check_readiness
from meridian_devstack.stack import Process
from meridian_testing.servers import free_port

NAMESPACE = "meridian-dev"
DEV_OVERLAY = Path("deployments/k8s/overlays/dev/kustomization.yaml")
SERVICE_MAIN = Path("services/current_account/main.py")
SERVICE_BUILD = Path("services/current_account/BUILD")
CHASSIS = Path("libs/meridian_chassis/__init__.py")
TIMEOUT = 600.0


def cluster_answers() -> str:
    """The current context's name, once its API server answers; BenchError otherwise."""
    kubectl = program("kubectl")
    context = subprocess.run(
        [kubectl, "config", "current-context"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if not context:
        raise BenchError("no current kube context")
    ready = subprocess.run(
        [kubectl, "get", "--raw", "/readyz", "--request-timeout=5s"],
        capture_output=True,
        text=True,
        check=False,
    )
    if ready.returncode != 0:
        raise BenchError(f"kube context {context} does not answer: {ready.stderr.strip()}")
    return context


def _ready(name: str, port: int) -> bool:
    """/health/ready answers 200 on the host port Tilt forwards to the service."""
    service = Process(name=name, cmd=("tilt",), port=port, ready_path="/health/ready")
    return check_readiness(service, timeout=1.0).ready


class TiltLoop:
    def __init__(
        self, source: Path, scratch: Path, services: Mapping[str, int], allow: str | None
    ) -> None:
        self.clone = scratch / "meridian"
        self.services = dict(services)  # name -> host port of its port-forward
        self.tilt_args = ["--", f"--allow-context={allow}"] if allow else []
        self.env = clean_environment({"TILT_PORT": str(free_port())})
        subprocess.run(
            [program("git"), "clone", "--quiet", str(source), str(self.clone)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        self.log = (scratch / "tilt.log").open("wb")
        self.tilt: subprocess.Popen[bytes] | None = None

    def kubectl(self, *argv: str) -> str:
        return subprocess.run(
            [program("kubectl"), "-n", NAMESPACE, *argv],
            capture_output=True,
            text=True,
            check=False,
        ).stdout

    def up(self) -> None:
        self.tilt = subprocess.Popen(
            [program("tilt"), "up", "--stream", *self.tilt_args],
            cwd=self.clone,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        waited = subprocess.run(
            [
                program("tilt"),
                "wait",
                "--for=condition=Ready",
                "uiresource",
                "--all",
                f"--timeout={int(TIMEOUT)}s",
            ],
            cwd=self.clone,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if waited.returncode != 0:
            raise BenchError(f"tilt up did not get every resource ready: {waited.stderr[-500:]}")

    def builds(self, name: str) -> int:
        """How many builds Tilt has recorded for a resource (image builds and live updates)."""
        listed = subprocess.run(
            [program("tilt"), "get", "uiresource", name, "-o", "json"],
            cwd=self.clone,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        status = json.loads(listed or "{}").get("status", {})
        return len(status.get("buildHistory") or [])

    def wait_until(
        self, done: Sequence[str], check: Callable[[str], bool], started: float
    ) -> float:
        while time.monotonic() - started < TIMEOUT:
            if all(check(name) for name in done):
                return time.monotonic() - started
            time.sleep(0.05)
        raise BenchError(f"{list(done)} not done within {TIMEOUT:g} s")

    def serves_marker(self, marker: str, since: float) -> Callable[[str], bool]:
        def check(name: str) -> bool:
            logs = self.kubectl(
                "logs", f"deploy/{name}", f"--since={int(time.monotonic() - since) + 5}s"
            )
            return marker in logs and _ready(name, self.services[name])

        return check

    def edit_and_wait(self, path: Path, names: Sequence[str]) -> float:
        marker = uuid.uuid4().hex[:12]
        started = time.monotonic()
        insert_marker(self.clone / path, marker)
        return self.wait_until(names, self.serves_marker(marker, started), started)

    def service_edit(self) -> float:
        return self.edit_and_wait(SERVICE_MAIN, ["current-account"])

    def chassis_edit(self) -> float:
        return self.edit_and_wait(CHASSIS, list(self.services))

    def pods(self, name: str) -> set[str]:
        return set(
            self.kubectl(
                "get", "pods", "-l", f"app.kubernetes.io/name={name}", "-o", "name"
            ).split()
        )

    def build_edit(self) -> float:
        before = self.pods("current-account")
        started = time.monotonic()
        with (self.clone / SERVICE_BUILD).open("a") as build:
            build.write(f"# devloop-bench {uuid.uuid4().hex[:12]}\n")

        def new_pod_serving(name: str) -> bool:
            return bool(self.pods(name) - before) and _ready(name, self.services[name])

        return self.wait_until(["current-account"], new_pod_serving, started)

    def config_change(self) -> tuple[float, int]:
        """Seconds until every service rolled out, and how many builds Tilt ran for it."""
        builds = {name: self.builds(name) for name in self.services}
        generations = {
            name: self.kubectl("get", f"deploy/{name}", "-o", "jsonpath={.metadata.generation}")
            for name in self.services
        }
        started = time.monotonic()
        toggle_patch_value(self.clone / DEV_OVERLAY, "LOG_LEVEL", ("DEBUG", "INFO"))

        def rolled(name: str) -> bool:
            generation = self.kubectl(
                "get", f"deploy/{name}", "-o", "jsonpath={.metadata.generation}"
            )
            if generation == generations[name]:
                return False
            status = subprocess.run(
                [
                    program("kubectl"),
                    "-n",
                    NAMESPACE,
                    "rollout",
                    "status",
                    f"deploy/{name}",
                    "--timeout=1s",
                ],
                capture_output=True,
                check=False,
            )
            return status.returncode == 0

        seconds = self.wait_until(list(self.services), rolled, started)
        built = sum(self.builds(name) - builds[name] for name in self.services)
        return seconds, built

    def down(self) -> None:
        if self.tilt is not None:
            os.killpg(self.tilt.pid, 2)
            self.tilt.wait(60)
        subprocess.run(
            [program("tilt"), "down", *self.tilt_args],
            cwd=self.clone,
            env=self.env,
            capture_output=True,
            check=False,
        )
        self.log.close()


def tilt_ci_cold(source: Path, allow: str | None) -> float:
    """`tilt ci` from a fresh clone with empty caches (as `make bench-cold-start` empties them)."""
    from bench.coldstart.main import empty_cache_environment

    scratch = Path(tempfile.mkdtemp(prefix="meridian-tilt-ci-"))
    try:
        clone = scratch / "meridian"
        env = empty_cache_environment(scratch, clean_environment({"TILT_PORT": str(free_port())}))
        subprocess.run(
            [program("git"), "clone", "--quiet", "--no-local", str(source), str(clone)],
            check=True,
            env=env,
        )
        args = ["--", f"--allow-context={allow}"] if allow else []
        started = time.monotonic()
        result = subprocess.run(
            [program("tilt"), "ci", *args],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.monotonic() - started
        subprocess.run(
            [program("tilt"), "down", *args], cwd=clone, env=env, capture_output=True, check=False
        )
        if result.returncode != 0:
            raise BenchError(f"tilt ci failed:\n{(result.stdout + result.stderr)[-1500:]}")
        return seconds
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
