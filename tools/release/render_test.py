"""The release kustomization over the repository's real staging and production overlays,
rendered by the real kubectl kustomize."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools.release import render
from tools.release.affected import all_services
from tools.release.manifest import Manifest, ServiceImage

REPO = Path.cwd()
OLD = "a" * 40
NEW = "b" * 40


def release(commit: str, changed: str | None) -> Manifest:
    services = {}
    for name in all_services(REPO):
        built_by = commit if name == changed else OLD
        digest = ("2" if name == changed else "1") * 64
        services[name] = ServiceImage(
            f"ghcr.io/acme/meridian/{name}@sha256:{digest}", built_by[:12]
        )
    return Manifest(commit=commit, services=services)


def deployments(environment: str, manifest: Manifest, tmp_path: Path) -> dict[str, dict[str, Any]]:
    overlay = REPO / "deployments/k8s/overlays" / environment
    directory = render.write(overlay, tmp_path / manifest.commit[:6], manifest, "1.2.3")
    command = ["kubectl", "kustomize", str(directory)]
    text = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return {
        doc["metadata"]["name"]: doc
        for doc in yaml.safe_load_all(text)
        if doc and doc["kind"] == "Deployment"
    }


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_release_pins_digests_and_revisions(environment: str, tmp_path: Path) -> None:
    manifest = release(OLD, None)
    rendered = deployments(environment, manifest, tmp_path)
    assert sorted(rendered) == sorted(manifest.services)
    for name, entry in manifest.services.items():
        containers = rendered[name]["spec"]["template"]["spec"]["containers"]
        assert [container["name"] for container in containers] == [name]
        container = containers[0]
        assert container["image"] == entry.image
        env = {item["name"]: item.get("value") for item in container["env"]}
        assert env["MERIDIAN_BUILD_REVISION"] == entry.revision
        assert env["MERIDIAN_BUILD_VERSION"] == entry.version
        assert {"DATABASE_URL_FILE", "REDIS_PASSWORD_FILE"} <= set(env), "the overlay's own stay"
        annotations = rendered[name]["metadata"]["annotations"]
        assert annotations[render.RELEASE_ANNOTATION] == OLD
        assert annotations[render.VERSION_ANNOTATION] == "1.2.3"


def test_only_the_changed_service_gets_a_new_pod_template(tmp_path: Path) -> None:
    names = all_services(REPO)
    before = deployments("staging", release(OLD, None), tmp_path)
    after = deployments("staging", release(NEW, names[0]), tmp_path)
    assert before[names[0]]["spec"]["template"] != after[names[0]]["spec"]["template"]
    for name in names[1:]:
        assert before[name]["spec"]["template"] == after[name]["spec"]["template"]
