"""What a rollback restores: the release's objects as they were before the deploy.

Before applying, the deploy records every object of the rendered release that already
exists, whole (spec, data, labels, annotations), and after applying, which objects the
apply created. A rollback sets each recorded object back to its recorded content
(`kubectl replace`, which also resets the release annotations and brings back the pod
template, and with it the ConfigMap it named) and deletes what the deploy created (a
new service's Deployment and Service, a new NetworkPolicy, its new ConfigMaps).
Both steps can be repeated: a later process (`rollback --state`) finishes what a killed
one began.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.release.errors import ReleaseError
from tools.release.prune import ObjectRef, ref_of

SCHEMA = 2
# Set by the API server; a replace must not carry them (resourceVersion would make it
# conditional on nothing having changed since the snapshot).
SERVER_FIELDS = ("resourceVersion", "uid", "generation", "creationTimestamp", "managedFields")
# Kept by the server, not part of what a release sets.
SERVER_ANNOTATIONS = ("deployment.kubernetes.io/revision",)


def restorable(item: Mapping[str, Any]) -> dict[str, Any]:
    """The object as a replace restores it: no status, no server-set metadata."""
    body = {key: value for key, value in item.items() if key != "status"}
    metadata = {
        key: value for key, value in item.get("metadata", {}).items() if key not in SERVER_FIELDS
    }
    annotations = {
        key: value
        for key, value in (metadata.get("annotations") or {}).items()
        if key not in SERVER_ANNOTATIONS
    }
    if annotations:
        metadata["annotations"] = annotations
    else:
        metadata.pop("annotations", None)
    body["metadata"] = metadata
    return body


def differs(live: Mapping[str, Any], before: Mapping[str, Any]) -> bool:
    return restorable(live) != restorable(before)


def _ref_key(ref: ObjectRef) -> str:
    return f"{ref.kind}/{ref.namespace}/{ref.name}"


def _ref_from(key: str) -> ObjectRef:
    kind, namespace, name = key.split("/", 2)
    return ObjectRef(kind, namespace, name)


@dataclass
class DeployState:
    environment: str
    before: list[dict[str, Any]]
    created: list[ObjectRef] = field(default_factory=list)
    complete: bool = False

    def save(self, path: Path) -> None:
        body = {
            "schema": SCHEMA,
            "environment": self.environment,
            "complete": self.complete,
            "before": [restorable(item) for item in self.before],
            "created": [_ref_key(ref) for ref in self.created],
        }
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(body, indent=1) + "\n")
        partial.replace(path)

    @staticmethod
    def load(path: Path) -> DeployState:
        try:
            body = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ReleaseError(f"deploy state {path} is not JSON ({error})") from None
        if not isinstance(body, dict) or body.get("schema") != SCHEMA:
            raise ReleaseError(f"deploy state {path} is not a schema {SCHEMA} deploy state")
        return DeployState(
            environment=str(body.get("environment", "")),
            before=list(body.get("before", [])),
            created=[_ref_from(key) for key in body.get("created", [])],
            complete=bool(body.get("complete")),
        )

    def created_by(self, live: Iterable[Mapping[str, Any]]) -> list[ObjectRef]:
        """Objects of `live` that did not exist before the deploy."""
        existed = {ref_of(item) for item in self.before}
        return sorted({ref_of(item) for item in live} - existed)

    def names(self) -> list[dict[str, Any]]:
        """Every object the deploy touched, by kind, namespace and name (for `get -f`)."""
        return [
            {
                "apiVersion": item["apiVersion"],
                "kind": item["kind"],
                "metadata": {
                    "name": item["metadata"]["name"],
                    "namespace": item["metadata"].get("namespace"),
                },
            }
            for item in self.before
        ]
