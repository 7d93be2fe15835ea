"""The deploy tool against a stand-in kubectl (kubectl_standin.py), since no Kubernetes
cluster can run here. More in deploy_cancel_test.py (signals, kills, the runner's
cancel), deploy_order_test.py (releases only move forward) and deploy_rollback_test.py
(what a rollback restores).

What this shows: the tool's own decisions and calls. It renders the release with the
real `kubectl kustomize`, never passes --prune, watches only rollouts the apply started,
fails a pod that cannot pull its image, crash-loops or fails its startup probe at once
(naming pod, reason and event) instead of waiting for the deadline, checks that every
pod runs the manifest's digest (imageID) and /version through port-forward, and rolls
back on any failure. Once a deploy has succeeded, it removes a removed service's
objects and the ConfigMaps no ReplicaSet names, and nothing the release does not own.

What it cannot show without a cluster: that a real API server, kubelet and controllers
behave as the stand-in models them (pod states and events as a kubelet writes them,
Deployment status fields, revision numbering, port-forward picking a new pod), how soon
a real kubelet reports ImagePullBackOff or CrashLoopBackOff (seconds, by its back-off),
real RBAC, image pulls or network policies. Those are exercised by the staging deploy.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest

from tools.release.deploy import deploy
from tools.release.errors import ReleaseError
from tools.release.kube import Kubectl
from tools.release.manifest import Manifest, ServiceImage
from tools.release.render import RELEASE_ANNOTATION
from tools.release.standin_cluster import (
    DIGEST_NEW,
    DIGEST_OLD,
    NAMESPACE,
    REPOSITORY,
    SERVICES,
    Cluster,
    commit,
    config_of,
    first_release,
    manifest,
    settings,
    template_image,
    write_repo,
)


@pytest.fixture()
def released(tmp_path: Path) -> tuple[Path, Cluster, str]:
    """A cluster running the first commit's release of both services; that commit."""
    cluster, first = first_release(tmp_path)
    return tmp_path, cluster, first


def assert_rolled_back(cluster: Cluster, old_commit: str) -> None:
    for name in SERVICES:
        record = cluster.deployment(name)
        assert template_image(record) == f"{REPOSITORY}/{name}@{DIGEST_OLD}"
        assert record["annotations"][RELEASE_ANNOTATION] == old_commit
    assert not cluster.calls("undo")
    state = cluster.deploy_state()
    assert state["complete"] is True


def test_first_deploy_pins_digests_and_revisions(released: tuple[Path, Cluster, str]) -> None:
    _, cluster, first = released
    for name in SERVICES:
        record = cluster.deployment(name)
        assert template_image(record) == f"{REPOSITORY}/{name}@{DIGEST_OLD}"
        env = {e["name"]: e["value"] for e in record["template"]["spec"]["containers"][0]["env"]}
        assert env["MERIDIAN_BUILD_REVISION"] == first[:12]
        assert env["MERIDIAN_BUILD_VERSION"] == f"0.0.0-dev.g{first[:12]}"
        assert record["annotations"][RELEASE_ANNOTATION] == first
    applies = cluster.calls("apply")
    assert applies
    assert not [call for call in applies if any(word.startswith("--prune") for word in call)]


def test_unchanged_service_is_not_rolled(
    released: tuple[Path, Cluster, str], capsys: pytest.CaptureFixture[str]
) -> None:
    root, cluster, first = released
    cluster.behave()
    second = commit(root, "alpha changed")
    # beta keeps its entry (digest and revision) from the previous manifest.
    release = Manifest(
        commit=second,
        services={
            "alpha": ServiceImage(f"{REPOSITORY}/alpha@{DIGEST_NEW}", second[:12]),
            "beta": ServiceImage(f"{REPOSITORY}/beta@{DIGEST_OLD}", first[:12]),
        },
    )
    deploy(settings(root, release), Kubectl(str(cluster.kubectl)))
    assert cluster.deployment("alpha")["revision"] == 2
    assert cluster.deployment("beta")["revision"] == 1
    err = capsys.readouterr().err
    assert f"rollouts started: ['{NAMESPACE}/alpha']" in err
    # Both services' pods and /version were checked, the unchanged one included.
    assert f"{NAMESPACE}/beta: every pod ready, running {DIGEST_OLD}" in err
    assert {call[-2] for call in cluster.calls("port-forward")} == {"service/alpha", "service/beta"}


@pytest.mark.parametrize(
    ("outcome", "reason"),
    [
        pytest.param(
            "pull",
            r"meridian-staging/alpha: pod alpha-\w+-0: container alpha: ImagePullBackOff "
            r"\(Back-off pulling image \"registry.example/meridian/alpha@sha256:2+\"\); "
            r"event Failed: Failed to pull image .*: not found",
            id="image cannot be pulled",
        ),
        pytest.param(
            "crash",
            r"pod alpha-\w+-0: container alpha: CrashLoopBackOff \(back-off 40s\); "
            r"event BackOff: Back-off restarting failed container alpha",
            id="crash loop",
        ),
        pytest.param(
            "startup",
            r"pod alpha-\w+-0: container alpha: restarted 1x; last ended Error \(exit 137\); "
            r"event Unhealthy: Startup probe failed",
            id="startup probe fails",
        ),
        pytest.param(
            "fail",
            r"meridian-staging/alpha: ProgressDeadlineExceeded: ReplicaSet .* has timed out",
            id="progress deadline",
        ),
        pytest.param(
            "foreign",
            r"meridian-staging/alpha: pod alpha-\w+-0 runs imageID "
            r"'registry.example/meridian/alpha@sha256:f+', not the manifest's sha256:2+",
            id="pod runs another digest",
        ),
    ],
)
def test_a_failing_pod_fails_the_deploy_at_once_naming_it(
    released: tuple[Path, Cluster, str], outcome: str, reason: str
) -> None:
    root, cluster, first = released
    cluster.behave(**{f"{REPOSITORY}/alpha@{DIGEST_NEW}": outcome})
    second = commit(root, "second release")
    started = time.monotonic()
    with pytest.raises(ReleaseError, match=reason + r".*rolled back"):
        deploy(
            settings(root, manifest(second, dict.fromkeys(SERVICES, DIGEST_NEW)), deadline=600),
            Kubectl(str(cluster.kubectl)),
        )
    # Long before the deadline: the pod's own state said it would never become ready.
    assert time.monotonic() - started < 60
    assert_rolled_back(cluster, first)


def test_stale_version_rolls_back(released: tuple[Path, Cluster, str]) -> None:
    root, cluster, first = released
    cluster.behave(stale_version=["beta"])
    second = commit(root, "second release")
    with pytest.raises(ReleaseError, match="beta: /version reports revision '000000000000'"):
        deploy(
            settings(root, manifest(second, dict.fromkeys(SERVICES, DIGEST_NEW))),
            Kubectl(str(cluster.kubectl)),
        )
    assert_rolled_back(cluster, first)


def test_config_rolls_back_with_the_deployment(released: tuple[Path, Cluster, str]) -> None:
    root, cluster, first = released
    old_config = config_of(cluster.deployment("alpha"))
    write_repo(root, log_level="DEBUG")  # new content, new hashed ConfigMap name
    second = commit(root, "debug logs")
    cluster.behave(**{f"{REPOSITORY}/alpha@{DIGEST_NEW}": "fail"})
    with pytest.raises(ReleaseError, match="rolled back"):
        deploy(
            settings(root, manifest(second, dict.fromkeys(SERVICES, DIGEST_NEW))),
            Kubectl(str(cluster.kubectl)),
        )
    assert config_of(cluster.deployment("alpha")) == old_config
    # The old ConfigMap was never deleted; the failed release's new one was.
    alpha_configs = [name for name in cluster.configmaps() if name.startswith("alpha-config-")]
    assert alpha_configs == [old_config]
    assert_rolled_back(cluster, first)


def test_own_deadline_rolls_back(released: tuple[Path, Cluster, str]) -> None:
    root, cluster, first = released
    cluster.behave(**{f"{REPOSITORY}/beta@{DIGEST_NEW}": "hang"})
    second = commit(root, "second release")
    started = time.monotonic()
    with pytest.raises(ReleaseError, match="rollout did not finish by the deadline.*rolled back"):
        deploy(
            settings(root, manifest(second, dict.fromkeys(SERVICES, DIGEST_NEW)), deadline=8),
            Kubectl(str(cluster.kubectl)),
        )
    assert time.monotonic() - started < 8 + 60
    assert_rolled_back(cluster, first)


def test_manifest_must_pin_every_service(tmp_path: Path) -> None:
    write_repo(tmp_path, log_level="INFO")
    first = commit(tmp_path, "first")
    cluster = Cluster(tmp_path)
    with pytest.raises(
        ReleaseError, match=r"lists \['alpha'\], the repository's services are \['alpha', 'beta'\]"
    ):
        deploy(
            settings(tmp_path, manifest(first, {"alpha": DIGEST_OLD})),
            Kubectl(str(cluster.kubectl)),
        )
    assert not cluster.state.exists(), "nothing may be called before the inputs are checked"


def test_release_version_form_is_checked_first(tmp_path: Path) -> None:
    write_repo(tmp_path, log_level="INFO")
    first = commit(tmp_path, "first")
    cluster = Cluster(tmp_path)
    release = manifest(first, dict.fromkeys(SERVICES, DIGEST_OLD))
    bad = dataclasses.replace(settings(tmp_path, release), release_version="v1.2")
    with pytest.raises(ReleaseError, match="--release-version 'v1.2' is not X.Y.Z"):
        deploy(bad, Kubectl(str(cluster.kubectl)))
    assert not cluster.state.exists()


def test_config_no_replica_set_can_return_to_is_removed_after_a_successful_deploy(
    released: tuple[Path, Cluster, str],
) -> None:
    root, cluster, _ = released
    first_config = config_of(cluster.deployment("alpha"))
    kubectl = Kubectl(str(cluster.kubectl))
    write_repo(root, log_level="DEBUG")
    second = commit(root, "debug logs")
    deploy(settings(root, manifest(second, dict.fromkeys(SERVICES, DIGEST_NEW))), kubectl)
    second_config = config_of(cluster.deployment("alpha"))
    # Revision 1's ReplicaSet still names the first ConfigMap: a rollback may need it.
    assert {first_config, second_config} <= cluster.configmaps()

    cluster.keep_only_current_revisions()
    write_repo(root, log_level="WARNING")
    third = commit(root, "warnings only")
    deploy(settings(root, manifest(third, dict.fromkeys(SERVICES, DIGEST_OLD))), kubectl)
    third_config = config_of(cluster.deployment("alpha"))
    alpha_configs = {name for name in cluster.configmaps() if name.startswith("alpha-config-")}
    # The first is gone; the second is still named by revision 2's ReplicaSet.
    assert alpha_configs == {second_config, third_config}
    deletes = cluster.calls("delete")
    assert ["-n", NAMESPACE, "delete", "configmap", first_config] == deletes[0][:5]
    assert all("--wait=false" in call for call in deletes)


def test_a_removed_service_goes_only_once_a_deploy_without_it_succeeded(
    released: tuple[Path, Cluster, str],
) -> None:
    root, cluster, _ = released
    beta = {f"Deployment/{NAMESPACE}/beta", f"Service/{NAMESPACE}/beta"}
    beta_config = config_of(cluster.deployment("beta"))
    kubectl = Kubectl(str(cluster.kubectl))
    write_repo(root, log_level="INFO", services=("alpha",))
    second = commit(root, "beta removed")
    cluster.behave(**{f"{REPOSITORY}/alpha@{DIGEST_NEW}": "fail"})
    with pytest.raises(ReleaseError, match="rolled back"):
        deploy(settings(root, manifest(second, {"alpha": DIGEST_NEW})), kubectl)
    assert beta <= cluster.objects()
    assert not cluster.calls("delete")

    cluster.behave()
    deploy(settings(root, manifest(second, {"alpha": DIGEST_NEW})), kubectl)
    assert not beta & cluster.objects()
    # Its ConfigMap went with it: only the removed Deployment's ReplicaSets named it.
    assert beta_config not in cluster.configmaps()
    # Its pods go before the configuration they name.
    deleted = [call[3] for call in cluster.calls("delete")]
    assert deleted[0] == "deployment"
    assert f"Deployment/{NAMESPACE}/alpha" in cluster.objects()


def test_what_the_release_does_not_own_is_never_removed(
    released: tuple[Path, Cluster, str],
) -> None:
    root, cluster, _ = released
    # Credentials made outside the release, and a ConfigMap someone added by hand.
    owned: dict[str, Any] = {"app.kubernetes.io/part-of": "meridian"}
    cluster.add_object(
        {
            "kind": "Secret",
            "metadata": {"name": "alpha-credentials", "namespace": NAMESPACE, "labels": owned},
        }
    )
    cluster.add_object({"kind": "ConfigMap", "metadata": {"name": "notes", "namespace": NAMESPACE}})
    kubectl = Kubectl(str(cluster.kubectl))
    write_repo(root, log_level="DEBUG")
    second = commit(root, "debug logs")
    deploy(settings(root, manifest(second, dict.fromkeys(SERVICES, DIGEST_NEW))), kubectl)
    cluster.keep_only_current_revisions()
    write_repo(root, log_level="WARNING")
    third = commit(root, "warnings only")
    deploy(settings(root, manifest(third, dict.fromkeys(SERVICES, DIGEST_OLD))), kubectl)
    assert {f"Secret/{NAMESPACE}/alpha-credentials", f"ConfigMap/{NAMESPACE}/notes"} <= (
        cluster.objects()
    )
    # The prune ran (the old release's ConfigMaps went) and passed both by.
    deleted = {call[4] for call in cluster.calls("delete")}
    assert deleted
    assert not deleted & {"alpha-credentials", "notes"}
