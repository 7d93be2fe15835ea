"""The e2e cluster: its kustomization, the dev overlay (services plus local backing
services) running the images CI built for the affected services, configured as they
ship, with the other services left out (no services: the backing services alone, which
start while the images build); and the check that each of those services answers a
real request through its Service once the Deployments are Available."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tools.release.errors import ReleaseError
from tools.release.kube import Deadline, Kubectl, fetch_version

OVERLAY = Path("deployments/k8s/overlays/dev")
_SHIPPING_CONTAINER = [
    # The shipped image has no live update: read-only root, no reload.
    {
        "op": "replace",
        "path": "/spec/template/spec/containers/0/securityContext/readOnlyRootFilesystem",
        "value": True,
    },
]


def kustomization(
    repo: Path, directory: Path, services: list[str], all_services: list[str], tag: str
) -> dict[str, Any]:
    unknown = sorted(set(services) - set(all_services))
    if unknown:
        raise ReleaseError(f"--services names {unknown}, which are not services {all_services}")
    patches: list[dict[str, Any]] = [
        {
            "target": {"kind": "ConfigMap", "labelSelector": "app.kubernetes.io/component=service"},
            "patch": json.dumps([{"op": "replace", "path": "/data/MERIDIAN_RELOAD", "value": "0"}]),
        },
        {
            "target": {
                "kind": "Deployment",
                "labelSelector": "app.kubernetes.io/component=service",
            },
            "patch": json.dumps(_SHIPPING_CONTAINER),
        },
    ]
    patches += [
        {
            "target": {"kind": "Deployment", "name": name},
            "patch": json.dumps(
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": {"name": name},
                    "$patch": "delete",
                }
            ),
        }
        for name in sorted(set(all_services) - set(services))
    ]
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath((repo / OVERLAY).resolve(), directory.resolve())],
        "images": [{"name": f"meridian/{name}", "newTag": tag} for name in sorted(services)],
        "patches": patches,
    }


def write(
    repo: Path, directory: Path, services: list[str], all_services: list[str], tag: str
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    body = kustomization(repo, directory, services, all_services, tag)
    (directory / "kustomization.yaml").write_text(json.dumps(body, indent=2) + "\n")


def check_services(
    kubectl: Kubectl, namespace: str, services: list[str], deadline: Deadline
) -> list[str]:
    """Each service, through its Service and the API server's port-forward, as a client
    reaches it: /health/ready answers 200 (its database, Redis and Kafka reached from
    the pod) and /version names the service. What failed, one line per service."""
    wanted = [
        {"kind": "Service", "apiVersion": "v1", "metadata": {"namespace": namespace, "name": name}}
        for name in services
    ]
    found = {item["metadata"]["name"]: item for item in kubectl.live(wanted, deadline)}
    problems = []
    for name in services:
        service = found.get(name)
        if service is None:
            problems.append(f"{namespace}/{name}: no Service {name}")
            continue
        port = int(service["spec"]["ports"][0]["port"])
        try:
            with kubectl.port_forward(namespace, name, port, deadline) as local_port:
                body, error = fetch_version(local_port, timeout=min(10, deadline.left()))
        except ReleaseError as failed:
            problems.append(f"{namespace}/{name}: {failed}")
            continue
        if error is not None:
            problems.append(f"{namespace}/{name}: {error}")
        elif not isinstance(body, dict) or body.get("name") != name:
            problems.append(f"{namespace}/{name}: /version names {body!r:.120}, not {name}")
        else:
            print(f"e2e: {namespace}/{name}: /health/ready 200, /version names {name}")
    return problems
