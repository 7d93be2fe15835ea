"""How rollout.py reads Deployments, ReplicaSets and pods, on objects shaped as the API
server and kubelet write them (field names and values from Kubernetes' API reference;
not captured from a live cluster, which this machine cannot run)."""

from __future__ import annotations

from typing import Any

import pytest

from tools.release.rollout import current_pods, identity_problems, pod_problem, progress

NS = "meridian-production"
DIGEST = "sha256:" + "a" * 64


def deployment(revision: str = "4", **status: Any) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {
            "name": "alpha",
            "namespace": NS,
            "generation": 7,
            "annotations": {"deployment.kubernetes.io/revision": revision},
        },
        "spec": {"replicas": 2},
        "status": {
            "observedGeneration": 7,
            "replicas": 2,
            "updatedReplicas": 2,
            "availableReplicas": 2,
            **status,
        },
    }


def replica_set(name: str, revision: str) -> dict[str, Any]:
    return {
        "kind": "ReplicaSet",
        "metadata": {
            "name": name,
            "namespace": NS,
            "annotations": {"deployment.kubernetes.io/revision": revision},
            "ownerReferences": [{"kind": "Deployment", "name": "alpha", "controller": True}],
        },
    }


def pod(
    name: str,
    replica_set_name: str,
    state: dict[str, Any],
    ready: bool = True,
    image_id: str = f"ghcr.io/acme/meridian/alpha@{DIGEST}",
    **extra: Any,
) -> dict[str, Any]:
    status = {"name": "alpha", "state": state, "ready": ready, "restartCount": 0}
    status |= {"imageID": image_id, **extra}
    return {
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NS,
            "ownerReferences": [{"kind": "ReplicaSet", "name": replica_set_name}],
        },
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [status],
        },
    }


RUNNING = {"running": {"startedAt": "2026-12-07T05:00:00Z"}}


def test_only_the_current_replica_sets_live_pods_count() -> None:
    objects = [
        replica_set("alpha-old", "3"),
        replica_set("alpha-new", "4"),
        pod("alpha-old-1", "alpha-old", RUNNING),
        pod("alpha-new-1", "alpha-new", RUNNING),
        pod("alpha-new-2", "alpha-new", RUNNING),
    ]
    leaving = pod("alpha-new-0", "alpha-new", RUNNING)
    leaving["metadata"]["deletionTimestamp"] = "2026-12-07T05:01:00Z"
    found = current_pods(deployment(), [*objects, leaving])
    assert [p["metadata"]["name"] for p in found or []] == ["alpha-new-1", "alpha-new-2"]
    # Before the controller made the new ReplicaSet there is nothing to judge.
    assert current_pods(deployment(revision="5"), objects) is None


@pytest.mark.parametrize(
    ("state", "extra", "expected"),
    [
        ({"waiting": {"reason": "ContainerCreating"}}, {}, None),
        # One failed pull is retried at once; it fails the deploy as ImagePullBackOff.
        ({"waiting": {"reason": "ErrImagePull", "message": "not found"}}, {}, None),
        (
            {"waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "x"'}},
            {},
            'container alpha: ImagePullBackOff (Back-off pulling image "x")',
        ),
        (
            {
                "waiting": {
                    "reason": "CreateContainerConfigError",
                    "message": 'secret "s" not found',
                }
            },
            {},
            'container alpha: CreateContainerConfigError (secret "s" not found)',
        ),
        (
            RUNNING,
            {"restartCount": 1, "lastState": {"terminated": {"reason": "Error", "exitCode": 137}}},
            "container alpha: restarted 1x; last ended Error (exit 137)",
        ),
    ],
)
def test_pod_problems(state: dict[str, Any], extra: dict[str, Any], expected: str | None) -> None:
    found = pod_problem(pod("alpha-new-1", "alpha-new", state, ready=False, **extra))
    assert (found.reason if found else None) == expected


def test_finished_only_when_every_replica_is_updated_and_available() -> None:
    objects = [replica_set("alpha-new", "4"), pod("alpha-new-1", "alpha-new", RUNNING)]
    assert progress(deployment(), objects) == (True, None)
    assert progress(deployment(observedGeneration=6), objects) == (False, None)
    assert progress(deployment(replicas=3), objects) == (False, None)  # an old pod remains
    assert progress(deployment(availableReplicas=1), objects) == (False, None)
    stuck = deployment(
        conditions=[
            {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": 'ReplicaSet "alpha-new" has timed out progressing.',
            }
        ]
    )
    finished, problem = progress(stuck, objects)
    assert not finished
    assert problem is not None
    assert problem.reason == (
        'ProgressDeadlineExceeded: ReplicaSet "alpha-new" has timed out progressing.'
    )


@pytest.mark.parametrize(
    "image_id",
    [
        f"ghcr.io/acme/meridian/alpha@{DIGEST}",  # containerd
        f"docker-pullable://ghcr.io/acme/meridian/alpha@{DIGEST}",  # dockershim, cri-dockerd
    ],
)
def test_identity_by_the_kubelets_image_id(image_id: str) -> None:
    objects = [
        replica_set("alpha-new", "4"),
        pod("alpha-new-1", "alpha-new", RUNNING, image_id=image_id),
        pod("alpha-new-2", "alpha-new", RUNNING, image_id=image_id),
    ]
    assert identity_problems(deployment(), objects, DIGEST) == []


def test_identity_problems_name_each_pod() -> None:
    other = "sha256:" + "b" * 64
    objects = [
        replica_set("alpha-new", "4"),
        pod("alpha-new-1", "alpha-new", RUNNING, image_id=f"ghcr.io/acme/meridian/alpha@{other}"),
        pod("alpha-new-2", "alpha-new", RUNNING, ready=False),
    ]
    assert identity_problems(deployment(), objects, DIGEST) == [
        f"{NS}/alpha: pod alpha-new-1 runs imageID 'ghcr.io/acme/meridian/alpha@{other}', "
        f"not the manifest's {DIGEST}",
        f"{NS}/alpha: pod alpha-new-2 is not ready",
    ]
    # An image ID without a repository digest (a local image's config id) is no proof.
    local = [replica_set("alpha-new", "4")] + [
        pod(f"alpha-new-{n}", "alpha-new", RUNNING, image_id=f"sha256:{'c' * 64}") for n in (1, 2)
    ]
    assert len(identity_problems(deployment(), local, DIGEST)) == 2
    assert identity_problems(deployment(), objects[:2], DIGEST) == [
        f"{NS}/alpha: expected 2 pods of its current ReplicaSet, found 1"
    ]
