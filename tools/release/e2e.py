"""The e2e cluster's kustomization: the dev overlay (services plus local backing
services) running the images CI built for the affected services, configured as they
ship, with the other services left out (no services: the backing services alone, which
start while the images build)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tools.release.errors import ReleaseError

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
