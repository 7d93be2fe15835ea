"""kubectl, driven with deadlines: every call is bounded by the time the deploy has left."""

from __future__ import annotations

import json
import re
import select
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.release.errors import ReleaseError
from tools.release.process import popen, run

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
_FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+)")


class Deadline:
    """A point in time that every step of a deploy (or of its rollback) must finish by."""

    def __init__(self, seconds: float, what: str) -> None:
        self.at = time.monotonic() + seconds
        self.what = what

    def left(self) -> float:
        remaining = self.at - time.monotonic()
        if remaining <= 0:
            raise ReleaseError(f"{self.what}: out of time (its deadline passed)")
        return remaining


@dataclass(frozen=True)
class DeploymentRef:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


class Kubectl:
    def __init__(self, executable: str = "kubectl") -> None:
        self.executable = executable

    def _run(self, argv: Sequence[str], deadline: Deadline, input_text: str | None = None) -> str:
        return run([self.executable, *argv], timeout=deadline.left(), input_text=input_text)

    def kustomize(self, directory: Path, deadline: Deadline) -> str:
        return self._run(["kustomize", str(directory)], deadline)

    def live_objects(self, rendered: Path, deadline: Deadline) -> list[dict[str, Any]]:
        """The objects of the rendered file that exist in the cluster, as the server has them."""
        text = self._run(["get", "-f", str(rendered), "--ignore-not-found", "-o", "json"], deadline)
        return _objects(text)

    def live(self, items: Sequence[dict[str, Any]], deadline: Deadline) -> list[dict[str, Any]]:
        """The objects named by `items` (kind, namespace, name) that exist, as the server
        has them."""
        text = "".join(f"---\n{json.dumps(item)}\n" for item in items)
        argv = ["get", "-f", "-", "--ignore-not-found", "-o", "json"]
        return _objects(self._run(argv, deadline, text)) if items else []

    def apply(self, rendered: Path, deadline: Deadline) -> None:
        # No --prune: the ConfigMaps of earlier releases (content-hashed names) stay, so a
        # rolled-back pod template finds the configuration it was released with.
        self._run(["apply", "-f", str(rendered)], deadline)

    def list_objects(
        self, namespace: str, kinds: Sequence[str], deadline: Deadline, selector: str = ""
    ) -> list[dict[str, Any]]:
        """Objects of the kinds in the namespace (with the label selector, if any)."""
        argv = ["-n", namespace, "get", ",".join(sorted(kind.lower() for kind in kinds))]
        argv += ["-l", selector] if selector else []
        return _objects(self._run([*argv, "-o", "json"], deadline))

    def delete(self, kind: str, namespace: str, name: str, deadline: Deadline) -> None:
        # --wait=false: the API server finishes it (a Deployment's pods, its ReplicaSets).
        argv = ["-n", namespace, "delete", kind.lower(), name, "--ignore-not-found"]
        self._run([*argv, "--wait=false"], deadline)

    def replace(self, item: dict[str, Any], deadline: Deadline) -> None:
        """Sets the object to exactly `item` (a snapshot taken before a deploy)."""
        self._run(["replace", "-f", "-"], deadline, json.dumps(item))

    def events(self, namespace: str, name: str, deadline: Deadline) -> list[dict[str, Any]]:
        """Events about the object named `name` (e.g. a pod) in the namespace."""
        argv = ["-n", namespace, "get", "events", "--field-selector"]
        return _objects(self._run([*argv, f"involvedObject.name={name}", "-o", "json"], deadline))

    @contextmanager
    def port_forward(
        self, namespace: str, service: str, port: int, deadline: Deadline
    ) -> Iterator[int]:
        """A local port forwarded to the Service through the API server (works under
        default-deny network policies, needs nothing in the cluster)."""
        child = popen(
            [self.executable, "-n", namespace, "port-forward", f"service/{service}", f":{port}"]
        )
        if child.stdout is None:
            raise ReleaseError("port-forward started without an output pipe")
        try:
            seen: list[str] = []
            local_port = None
            while local_port is None:
                ready, _, _ = select.select([child.stdout], [], [], min(deadline.left(), 30))
                line = child.stdout.readline() if ready else ""
                if not line:
                    raise ReleaseError(
                        f"port-forward to {namespace}/{service} did not start: {''.join(seen)}"
                    )
                seen.append(line)
                match = _FORWARDING.search(line)
                if match:
                    local_port = int(match.group(1))
            yield local_port
        finally:
            child.terminate()
            try:
                child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def _objects(text: str) -> list[dict[str, Any]]:
    """The objects of `kubectl get -o json` output: a List's items, or the one object."""
    if not text.strip():
        return []
    body = json.loads(text)
    items = body.get("items") if body.get("kind") == "List" else [body]
    return [item for item in items or [] if isinstance(item, dict) and item]


def revision_of(deployment: dict[str, Any]) -> int | None:
    value = deployment.get("metadata", {}).get("annotations", {}).get(REVISION_ANNOTATION)
    return int(value) if value else None


def get(url: str, timeout: float) -> bytes:
    """The body of a 2xx answer to GET url (forwarded local ports only)."""
    if not url.startswith("http://127.0.0.1:"):
        raise ReleaseError(f"refusing to fetch {url}: only forwarded local ports are checked")
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (checked above)
        body: bytes = response.read()
        return body


def fetch_version(port: int, timeout: float) -> tuple[Any, str | None]:
    """/version's body and the error that stopped /health/ready, if any."""
    try:
        get(f"http://127.0.0.1:{port}/health/ready", timeout)
    except (urllib.error.URLError, OSError, ValueError) as error:
        return None, f"/health/ready: {error}"
    try:
        return json.loads(get(f"http://127.0.0.1:{port}/version", timeout)), None
    except (urllib.error.URLError, OSError, ValueError) as error:
        return None, f"/version: {error}"
