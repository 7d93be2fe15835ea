"""The e2e cluster's kustomization over the repository's real dev overlay, rendered by the
real kubectl kustomize."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools.release import e2e, standin_cluster
from tools.release.affected import all_services
from tools.release.errors import ReleaseError
from tools.release.kube import Deadline, Kubectl

REPO = Path.cwd()


def rendered(tmp_path: Path, services: list[str]) -> list[dict[str, Any]]:
    e2e.write(REPO, tmp_path, services, all_services(REPO), "ci")
    command = ["kubectl", "kustomize", str(tmp_path)]
    text = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return [doc for doc in yaml.safe_load_all(text) if doc]


def service_deployments(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        doc["metadata"]["name"]: doc
        for doc in docs
        if doc["kind"] == "Deployment"
        and doc["metadata"]["labels"].get("app.kubernetes.io/component") == "service"
    }


def test_only_the_affected_services_run_the_built_image(tmp_path: Path) -> None:
    chosen = all_services(REPO)[0]
    docs = rendered(tmp_path, [chosen])
    deployments = service_deployments(docs)
    assert list(deployments) == [chosen]
    container = deployments[chosen]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"meridian/{chosen}:ci"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # The backing services stay, and the services' configuration is as shipped.
    assert {"redis", "kafka"} <= {
        doc["metadata"]["name"] for doc in docs if doc["kind"] == "Deployment"
    }
    reload_flags = {
        doc["data"]["MERIDIAN_RELOAD"]
        for doc in docs
        if doc["kind"] == "ConfigMap" and "MERIDIAN_RELOAD" in doc.get("data", {})
    }
    assert reload_flags == {"0"}


def test_no_services_is_the_backing_services_alone(tmp_path: Path) -> None:
    docs = rendered(tmp_path, [])
    assert service_deployments(docs) == {}
    assert any(doc["kind"] == "Deployment" for doc in docs)


def test_unknown_service_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ReleaseError, match=r"--services names \['ledger'\]"):
        e2e.write(REPO, tmp_path, ["ledger"], all_services(REPO), "ci")


def test_each_service_answers_through_its_service(tmp_path: Path) -> None:
    """Against the kubectl stand-in's cluster after a real deploy: port-forward to each
    Service, /health/ready and /version as a client gets them."""
    cluster, _ = standin_cluster.first_release(tmp_path)
    cluster.behave()  # forgets the deploy's own calls
    kubectl = Kubectl(str(cluster.kubectl))
    services = list(standin_cluster.SERVICES)
    deadline = Deadline(60, "e2e-check")
    assert e2e.check_services(kubectl, standin_cluster.NAMESPACE, services, deadline) == []
    forwarded = [call[-2] for call in cluster.calls("port-forward")]
    assert forwarded == [f"service/{name}" for name in services]


def test_a_service_that_does_not_answer_is_named(tmp_path: Path) -> None:
    cluster, _ = standin_cluster.first_release(tmp_path)
    namespace = standin_cluster.NAMESPACE
    # A Service with no pods behind it (no Deployment), and one that does not exist.
    cluster.add_object(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "gamma", "namespace": namespace},
            "spec": {"ports": [{"port": 8000}]},
        }
    )
    problems = e2e.check_services(
        Kubectl(str(cluster.kubectl)),
        namespace,
        ["alpha", "gamma", "delta"],
        Deadline(60, "e2e-check"),
    )
    assert len(problems) == 2
    assert problems[0].startswith(
        f"{namespace}/gamma: port-forward to {namespace}/gamma did not start"
    )
    assert problems[1] == f"{namespace}/delta: no Service delta"
