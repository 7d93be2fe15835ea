"""A temporary kustomization over an environment's overlay that pins a release.

The repository's overlays stay as they are: the temporary kustomization (in the
runner's temp directory) lists the overlay as its resource and adds
- `images:` every service's image by digest, from the release manifest;
- a patch per service Deployment: MERIDIAN_BUILD_REVISION/VERSION on the service's
  container (named after the service, as deployments/k8s/base names it) (the revision that built that service's image, so an unchanged service's
  pod template stays the same and it is not rolled), and the release commit as an
  annotation on the Deployment itself (not its pod template).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tools.release.manifest import Manifest

RELEASE_ANNOTATION = "meridian.dev/release-commit"
VERSION_ANNOTATION = "meridian.dev/release-version"


def _deployment_patch(
    service: str, revision: str, version: str, annotations: Mapping[str, str]
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": service, "annotations": dict(annotations)},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": service,
                            "env": [
                                {"name": "MERIDIAN_BUILD_REVISION", "value": revision},
                                {"name": "MERIDIAN_BUILD_VERSION", "value": version},
                            ],
                        }
                    ]
                }
            }
        },
    }


def kustomization(
    overlay: Path,
    directory: Path,
    manifest: Manifest,
    release_version: str | None = None,
    extra_patches: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The kustomization that, written into directory, renders overlay pinned to manifest."""
    annotations = {RELEASE_ANNOTATION: manifest.commit}
    if release_version:
        annotations[VERSION_ANNOTATION] = release_version
    images = [
        {"name": f"meridian/{service}", "newName": entry.repository, "digest": entry.digest}
        for service, entry in sorted(manifest.services.items())
    ]
    patches = [
        {
            "target": {"kind": "Deployment", "name": service},
            "patch": json.dumps(
                _deployment_patch(service, entry.revision, entry.version, annotations)
            ),
        }
        for service, entry in sorted(manifest.services.items())
    ]
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        # Kustomize refuses absolute resource paths.
        "resources": [os.path.relpath(overlay.resolve(), directory.resolve())],
        "images": images,
        "patches": patches + (extra_patches or []),
    }


def write(
    overlay: Path,
    directory: Path,
    manifest: Manifest,
    release_version: str | None = None,
    extra_patches: list[dict[str, Any]] | None = None,
) -> Path:
    """Writes directory/kustomization.yaml (JSON is YAML) and returns directory."""
    directory.mkdir(parents=True, exist_ok=True)
    body = kustomization(overlay, directory, manifest, release_version, extra_patches)
    (directory / "kustomization.yaml").write_text(json.dumps(body, indent=2) + "\n")
    return directory
