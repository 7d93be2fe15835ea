"""Whether rollouts finished, failed, or still run, read from the objects themselves.

`kubectl rollout status` waits until the progress deadline for a pod that can never
start (an image that cannot be pulled, a crash loop, a failing startup probe) and then
says only "exceeded its progress deadline". Instead, the Deployments, their current
ReplicaSets and those ReplicaSets' pods are read every few seconds: a pod in one of
FAILED_WAITING, or a container that restarted during the rollout, fails the deploy at
once, naming the pod, the reason and the newest warning event about it.

A finished rollout is then checked for identity: every pod of the Deployment's current
ReplicaSet is ready and runs the manifest's digest (`status.containerStatuses[].imageID`,
what the kubelet actually pulled), not only a pod template that names it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tools.release.kube import REVISION_ANNOTATION, Deadline, DeploymentRef, Kubectl

# Container states that do not resolve by waiting: the kubelet only backs off further.
# (ErrImagePull is left out: it turns into ImagePullBackOff within seconds when it lasts.)
FAILED_WAITING = frozenset(
    {
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CrashLoopBackOff",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)
POLL_SECONDS = 2.0

Object = Mapping[str, Any]


@dataclass(frozen=True)
class PodProblem:
    pod: str  # empty: the Deployment's own condition
    reason: str

    @property
    def of_deployment(self) -> bool:
        return not self.pod

    def describe(self, ref: DeploymentRef, event: str | None) -> str:
        seen = f"; event {event}" if event else ""
        where = "" if self.of_deployment else f" pod {self.pod}:"
        return f"{ref}:{where} {self.reason}{seen}"


def _labels(item: Object) -> Mapping[str, str]:
    labels: Mapping[str, str] = item.get("metadata", {}).get("labels") or {}
    return labels


def _owned_by(item: Object, kind: str, name: str) -> bool:
    return any(
        owner.get("kind") == kind and owner.get("name") == name
        for owner in item.get("metadata", {}).get("ownerReferences") or []
    )


def current_pods(deployment: Object, objects: Iterable[Object]) -> list[Object] | None:
    """The pods of the Deployment's current ReplicaSet (the one of its revision), except
    those terminating; None while that ReplicaSet does not exist yet."""
    metadata = deployment["metadata"]
    revision = (metadata.get("annotations") or {}).get(REVISION_ANNOTATION)
    objects = list(objects)
    current = [
        item
        for item in objects
        if item.get("kind") == "ReplicaSet"
        and item["metadata"].get("namespace") == metadata["namespace"]
        and _owned_by(item, "Deployment", metadata["name"])
        and (item["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION) == revision
    ]
    if revision is None or len(current) != 1:
        return None
    replica_set = current[0]["metadata"]["name"]
    return [
        item
        for item in objects
        if item.get("kind") == "Pod"
        and item["metadata"].get("namespace") == metadata["namespace"]
        and _owned_by(item, "ReplicaSet", replica_set)
        and not item["metadata"].get("deletionTimestamp")
    ]


def pod_problem(pod: Object) -> PodProblem | None:
    """Why the pod cannot become ready, if it certainly cannot."""
    name = str(pod["metadata"]["name"])
    status = pod.get("status") or {}
    for container in [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]:
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason in FAILED_WAITING:
            message = waiting.get("message")
            detail = f" ({message})" if message else ""
            return PodProblem(name, f"container {container.get('name')}: {reason}{detail}")
        restarts = int(container.get("restartCount") or 0)
        if restarts:
            ended = (container.get("lastState") or {}).get("terminated") or {}
            how = (
                f"; last ended {ended.get('reason', 'unknown')} (exit {ended.get('exitCode')})"
                if ended
                else ""
            )
            return PodProblem(
                name, f"container {container.get('name')}: restarted {restarts}x{how}"
            )
    return None


def _condition(item: Object, kind: str) -> Object:
    for condition in (item.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            found: Object = condition
            return found
    return {}


def progress(deployment: Object, objects: Iterable[Object]) -> tuple[bool, PodProblem | None]:
    """(finished, the problem that fails it) for one Deployment, as `kubectl rollout
    status` decides "finished", plus the pod checks above."""
    progressing = _condition(deployment, "Progressing")
    if progressing.get("status") == "False":
        reason = f"{progressing.get('reason')}: {progressing.get('message', '')}".strip()
        return False, PodProblem("", reason)
    pods = current_pods(deployment, objects) or []
    for pod in pods:
        problem = pod_problem(pod)
        if problem:
            return False, problem
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    generation = int(deployment["metadata"].get("generation") or 0)
    wanted = int(spec.get("replicas", 1))
    updated = int(status.get("updatedReplicas") or 0)
    finished = (
        int(status.get("observedGeneration") or 0) >= generation
        and updated == wanted
        and int(status.get("replicas") or 0) == updated
        and int(status.get("availableReplicas") or 0) == updated
    )
    return finished, None


def identity_problems(deployment: Object, objects: Iterable[Object], digest: str) -> list[str]:
    """Every pod the Deployment should have is ready and its container named after the
    Deployment runs `digest` (sha256:...), by the kubelet's own record of the image."""
    metadata = deployment["metadata"]
    ref = DeploymentRef(metadata["namespace"], metadata["name"])
    pods = current_pods(deployment, objects)
    wanted = int((deployment.get("spec") or {}).get("replicas", 1))
    if pods is None or len(pods) != wanted:
        found = "none" if pods is None else len(pods)
        return [f"{ref}: expected {wanted} pods of its current ReplicaSet, found {found}"]
    problems = []
    for pod in pods:
        pod_name = pod["metadata"]["name"]
        if _condition(pod, "Ready").get("status") != "True":
            problems.append(f"{ref}: pod {pod_name} is not ready")
        statuses = [
            status
            for status in (pod.get("status") or {}).get("containerStatuses") or []
            if status.get("name") == metadata["name"]
        ]
        image_id = str(statuses[0].get("imageID") or "") if statuses else ""
        if image_id.rpartition("@")[2] != digest:
            problems.append(
                f"{ref}: pod {pod_name} runs imageID {image_id or 'unknown'!r}, "
                f"not the manifest's {digest}"
            )
    return problems


def _newest_warning(events: Sequence[Object]) -> str | None:
    warnings = [event for event in events if event.get("type") == "Warning"]
    if not warnings:
        return None

    def when(event: Object) -> str:
        return str(
            event.get("lastTimestamp")
            or event.get("eventTime")
            or event.get("metadata", {}).get("creationTimestamp")
            or ""
        )

    newest = max(warnings, key=when)
    return f"{newest.get('reason')}: {str(newest.get('message', '')).strip()}"


def objects_of(
    kubectl: Kubectl, namespaces: Iterable[str], deadline: Deadline
) -> dict[str, list[dict[str, Any]]]:
    """namespace -> its Deployments, ReplicaSets and Pods."""
    kinds = ["Deployment", "ReplicaSet", "Pod"]
    return {ns: kubectl.list_objects(ns, kinds, deadline) for ns in sorted(set(namespaces))}


def wait(
    kubectl: Kubectl,
    refs: Sequence[DeploymentRef],
    deadline: Deadline,
    say: Any = print,
    poll: float = POLL_SECONDS,
) -> list[str]:
    """Waits until every Deployment's rollout finished; the problems (empty when all did).
    Stops at the first failed pod, naming it; the deadline passing is a problem too."""
    pending = set(refs)
    while pending:
        listed = objects_of(kubectl, (ref.namespace for ref in pending), deadline)
        problems = []
        for ref in sorted(pending, key=str):
            objects = listed[ref.namespace]
            deployment = next(
                (
                    item
                    for item in objects
                    if item.get("kind") == "Deployment" and item["metadata"]["name"] == ref.name
                ),
                None,
            )
            if deployment is None:
                problems.append(f"{ref}: the Deployment does not exist")
                continue
            finished, problem = progress(deployment, objects)
            if problem:
                events = (
                    []
                    if problem.of_deployment
                    else kubectl.events(ref.namespace, problem.pod, deadline)
                )
                problems.append(problem.describe(ref, _newest_warning(events)))
            elif finished:
                say(f"{ref}: rollout finished")
                pending.discard(ref)
        if problems:
            return problems
        if pending:
            if deadline.left() <= poll:
                return [
                    f"{ref}: rollout did not finish by the deadline"
                    for ref in sorted(pending, key=str)
                ]
            time.sleep(poll)
    return []
