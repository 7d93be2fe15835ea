"""What a successful deploy leaves behind, and removing it.

`kubectl apply` never prunes: while a deploy can still roll back, the ConfigMaps of
earlier releases (content-hashed names) must stay, since `rollout undo` brings back a
pod template that names one. Once a deploy has succeeded, two kinds of objects are left
over, and this deletes them:

- objects of a removed service (its Deployment, Service, PodDisruptionBudget, ...);
- configuration that nothing can return to: a ConfigMap no ReplicaSet references any
  more (a Deployment keeps `revisionHistoryLimit` old ReplicaSets, and so what
  `rollout undo` can restore).

Only objects the release owns are candidates: those carrying every label the base
kustomization stamps on its objects, of a kind the release renders, in a namespace it
renders into. Namespaces are never deleted.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

# What deployments/k8s/base/kustomization.yaml puts on every object it renders.
OWNED_LABELS = {
    "app.kubernetes.io/part-of": "meridian",
    "app.kubernetes.io/managed-by": "kustomize",
}
NEVER_PRUNED = frozenset({"Namespace"})


@dataclass(frozen=True, order=True)
class ObjectRef:
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name} in {self.namespace}"


def ref_of(item: Mapping[str, Any]) -> ObjectRef:
    metadata = item.get("metadata", {})
    return ObjectRef(str(item.get("kind")), str(metadata.get("namespace")), str(metadata["name"]))


def selector() -> str:
    return ",".join(f"{name}={value}" for name, value in sorted(OWNED_LABELS.items()))


def owned(item: Mapping[str, Any]) -> bool:
    labels = item.get("metadata", {}).get("labels") or {}
    return all(labels.get(name) == value for name, value in OWNED_LABELS.items())


def prunable_kinds(rendered: Iterable[Mapping[str, Any]]) -> dict[str, set[str]]:
    """namespace -> the kinds the release renders into it (never a Namespace)."""
    kinds: dict[str, set[str]] = {}
    for item in rendered:
        namespace = item.get("metadata", {}).get("namespace")
        if namespace and item.get("kind") not in NEVER_PRUNED:
            kinds.setdefault(str(namespace), set()).add(str(item["kind"]))
    return kinds


def _pod_spec_configmaps(pod_spec: Mapping[str, Any]) -> Iterator[str]:
    for volume in pod_spec.get("volumes") or []:
        if "configMap" in volume:
            yield volume["configMap"]["name"]
        for source in (volume.get("projected") or {}).get("sources") or []:
            if "configMap" in source:
                yield source["configMap"]["name"]
    for container in [*(pod_spec.get("containers") or []), *(pod_spec.get("initContainers") or [])]:
        for source in container.get("envFrom") or []:
            if "configMapRef" in source:
                yield source["configMapRef"]["name"]
        for variable in container.get("env") or []:
            reference = (variable.get("valueFrom") or {}).get("configMapKeyRef")
            if reference:
                yield reference["name"]


def configmaps_in_use(
    replica_sets: Iterable[Mapping[str, Any]], leaving: set[ObjectRef]
) -> set[ObjectRef]:
    """The ConfigMaps some ReplicaSet's pod template names, except ReplicaSets owned by a
    Deployment that is itself being removed."""
    in_use = set()
    for replica_set in replica_sets:
        metadata = replica_set.get("metadata", {})
        namespace = str(metadata.get("namespace"))
        owners = {
            ObjectRef(str(owner.get("kind")), namespace, str(owner.get("name")))
            for owner in metadata.get("ownerReferences") or []
        }
        if owners & leaving:
            continue
        pod_spec = replica_set.get("spec", {}).get("template", {}).get("spec", {})
        in_use |= {
            ObjectRef("ConfigMap", namespace, name) for name in _pod_spec_configmaps(pod_spec)
        }
    return in_use


def leftovers(
    rendered: Iterable[Mapping[str, Any]],
    live: Iterable[Mapping[str, Any]],
    replica_sets: Iterable[Mapping[str, Any]],
) -> list[ObjectRef]:
    """The owned live objects the release no longer contains and nothing can return to,
    Deployments first (their pods go before the configuration they name)."""
    rendered = list(rendered)
    wanted = {ref_of(item) for item in rendered}
    kinds = prunable_kinds(rendered)
    owned_live = {ref_of(item) for item in live if owned(item)}
    candidates = {ref for ref in owned_live if ref.kind in kinds.get(ref.namespace, set())} - wanted
    leaving_deployments = {ref for ref in candidates if ref.kind == "Deployment"}
    in_use = configmaps_in_use(replica_sets, leaving_deployments)
    stale = candidates - in_use
    return sorted(stale, key=lambda ref: (ref.kind != "Deployment", ref))
