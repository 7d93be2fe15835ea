"""A rollback restores the release, not only its Deployments (snapshot.py), against the
stand-in kubectl (see deploy_test.py for what that does and does not show)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.release import standin_cluster as pretend
from tools.release.deploy import deploy
from tools.release.errors import ReleaseError
from tools.release.kube import Kubectl
from tools.release.render import RELEASE_ANNOTATION
from tools.release.snapshot import differs, restorable

NETWORK_POLICY = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: gamma-ingress}
spec:
  podSelector: {matchLabels: {app: gamma}}
  policyTypes: [Ingress]
  ingress: [{from: [{podSelector: {matchLabels: {app: alpha}}}]}]
"""


def test_rollback_of_a_release_that_adds_a_service_and_a_network_policy(tmp_path: Path) -> None:
    pretend.write_repo(tmp_path, log_level="INFO", services=("alpha", "beta"))
    first = pretend.commit(tmp_path, "alpha and beta")
    cluster = pretend.Cluster(tmp_path)
    kubectl = Kubectl(str(cluster.kubectl))
    deploy(
        pretend.settings(
            tmp_path,
            pretend.manifest(first, {"alpha": pretend.DIGEST_OLD, "beta": pretend.DIGEST_OLD}),
        ),
        kubectl,
    )
    before = cluster.read()
    old_config = pretend.config_of(cluster.deployment("alpha"))

    # The release adds gamma with a NetworkPolicy, changes beta's Service and the config;
    # gamma's image cannot be pulled.
    pretend.write_repo(
        tmp_path,
        log_level="DEBUG",
        services=("alpha", "beta", "gamma"),
        extra={"policy.yaml": NETWORK_POLICY},
    )
    beta = tmp_path / "deployments/k8s/overlays/staging/beta.yaml"
    beta.write_text(beta.read_text().replace("port: 8000", "port: 9090"))
    second = pretend.commit(tmp_path, "gamma")
    cluster.behave(**{f"{pretend.REPOSITORY}/gamma@{pretend.DIGEST_NEW}": "pull"})
    release = pretend.manifest(
        second,
        {"alpha": pretend.DIGEST_NEW, "beta": pretend.DIGEST_NEW, "gamma": pretend.DIGEST_NEW},
    )
    with pytest.raises(ReleaseError, match="gamma.*ImagePullBackOff.*rolled back"):
        deploy(pretend.settings(tmp_path, release), kubectl)

    after = cluster.read()
    # What the release created is gone: gamma's Deployment, Service, ConfigMap, the policy.
    assert set(after["deployments"]) == {f"{pretend.NAMESPACE}/alpha", f"{pretend.NAMESPACE}/beta"}
    assert set(after["objects"]) == set(before["objects"])
    assert f"NetworkPolicy/{pretend.NAMESPACE}/gamma-ingress" not in after["objects"]
    created = set(cluster.deploy_state()["created"])
    assert {
        f"Deployment/{pretend.NAMESPACE}/gamma",
        f"Service/{pretend.NAMESPACE}/gamma",
        f"NetworkPolicy/{pretend.NAMESPACE}/gamma-ingress",
    } <= created
    # What it changed is as it was: beta's Service, pod templates, annotations.
    assert (
        after["objects"][f"Service/{pretend.NAMESPACE}/beta"]
        == before["objects"][f"Service/{pretend.NAMESPACE}/beta"]
    )
    for name in ("alpha", "beta"):
        record = cluster.deployment(name)
        assert pretend.template_image(record) == f"{pretend.REPOSITORY}/{name}@{pretend.DIGEST_OLD}"
        assert (
            record["annotations"]
            == before["deployments"][f"{pretend.NAMESPACE}/{name}"]["annotations"]
        )
        assert record["annotations"][RELEASE_ANNOTATION] == first
    assert pretend.config_of(cluster.deployment("alpha")) == old_config
    assert cluster.deploy_state()["complete"] is True


def test_server_fields_are_not_restored_and_do_not_count_as_changes() -> None:
    before = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "alpha",
            "namespace": pretend.NAMESPACE,
            "resourceVersion": "41",
            "uid": "u-1",
            "annotations": {"deployment.kubernetes.io/revision": "3", "team": "ledger"},
        },
        "spec": {"ports": [{"port": 8000}]},
        "status": {"loadBalancer": {}},
    }
    restored = restorable(before)
    assert restored == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "alpha",
            "namespace": pretend.NAMESPACE,
            "annotations": {"team": "ledger"},
        },
        "spec": {"ports": [{"port": 8000}]},
    }
    later = json.loads(json.dumps(before))
    later["metadata"]["resourceVersion"] = "57"
    assert not differs(later, before)
    later["spec"]["ports"][0]["port"] = 9090
    assert differs(later, before)
