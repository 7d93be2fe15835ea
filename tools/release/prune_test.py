"""Which objects a finished deploy removes: decided from the rendered release, what the
cluster has, and the ReplicaSets that `rollout undo` can return to."""

from __future__ import annotations

from typing import Any

from tools.release.prune import OWNED_LABELS, ObjectRef, configmaps_in_use, leftovers

NS = "meridian-production"


def obj(kind: str, name: str, owned: bool = True, namespace: str = NS) -> dict[str, Any]:
    labels = dict(OWNED_LABELS) if owned else {}
    return {"kind": kind, "metadata": {"name": name, "namespace": namespace, "labels": labels}}


def replica_set(owner: str, pod_spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{owner}-1",
            "namespace": NS,
            "ownerReferences": [{"kind": "Deployment", "name": owner}],
        },
        "spec": {"template": {"spec": pod_spec}},
    }


def test_every_way_a_pod_names_a_config_map_keeps_it() -> None:
    pod_spec = {
        "volumes": [
            {"name": "a", "configMap": {"name": "mounted"}},
            {"name": "b", "projected": {"sources": [{"configMap": {"name": "projected"}}]}},
        ],
        "initContainers": [{"name": "init", "envFrom": [{"configMapRef": {"name": "init-env"}}]}],
        "containers": [
            {
                "name": "app",
                "env": [
                    {
                        "name": "X",
                        "valueFrom": {"configMapKeyRef": {"name": "one-key", "key": "x"}},
                    },
                    {"name": "Y", "value": "plain"},
                ],
            }
        ],
    }
    in_use = configmaps_in_use([replica_set("ledger", pod_spec)], leaving=set())
    names = {ref.name for ref in in_use}
    assert names == {"mounted", "projected", "init-env", "one-key"}


def test_a_leaving_deployments_replica_sets_keep_nothing() -> None:
    spec = {"containers": [{"name": "app", "envFrom": [{"configMapRef": {"name": "old"}}]}]}
    leaving = {ObjectRef("Deployment", NS, "ledger")}
    assert configmaps_in_use([replica_set("ledger", spec)], leaving) == set()


def test_leftovers_are_owned_unrendered_unreferenced_and_deployments_first() -> None:
    rendered = [obj("Namespace", NS, namespace=""), obj("Deployment", "alpha")]
    rendered += [obj("ConfigMap", "alpha-new"), obj("Service", "alpha")]
    live = [
        *rendered,
        obj("Deployment", "gone"),
        obj("Service", "gone"),
        obj("ConfigMap", "alpha-old"),  # revision 1's ReplicaSet still names it
        obj("ConfigMap", "alpha-older"),  # no ReplicaSet does
        obj("ConfigMap", "by-hand", owned=False),
        obj("Secret", "credentials"),  # the release renders no Secret
        obj("Deployment", "elsewhere", namespace="other"),  # nor into that namespace
    ]
    spec = {"containers": [{"name": "app", "envFrom": [{"configMapRef": {"name": "alpha-old"}}]}]}
    found = leftovers(rendered, live, [replica_set("alpha", spec)])
    assert found == [
        ObjectRef("Deployment", NS, "gone"),
        ObjectRef("ConfigMap", NS, "alpha-older"),
        ObjectRef("Service", NS, "gone"),
    ]


def test_namespaces_are_never_leftovers() -> None:
    live = [obj("Namespace", "meridian-old", namespace=""), obj("Namespace", NS, namespace="")]
    assert leftovers([obj("Deployment", "alpha")], live, []) == []
