"""A stand-in for kubectl, for the deploy tool's tests: no cluster exists here.

It keeps a pretend cluster in a JSON file (STANDIN_STATE), records every call, renders
with the real `kubectl kustomize` (STANDIN_REAL_KUBECTL), and models what the deploy
relies on: `apply` of a changed pod template makes a new Deployment revision; `rollout
undo --to-revision=N` restores revision N's template (and so the ConfigMap it names);
each revision kept in a Deployment's history is a ReplicaSet (tests drop history to
model revisionHistoryLimit); only `delete` removes anything. Rollout outcomes are
chosen per image in the state's `behaviour`: `fail` (progress deadline exceeded), `hang` (never completes), anything
else succeeds. `port-forward` serves /health/ready and /version on a local port, with
the revision of the Deployment's current pod template (or a stale one for the services
listed in `behaviour.stale_version`).
"""

from __future__ import annotations

import fcntl
import http.server
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

REVISION = "deployment.kubernetes.io/revision"
STALE_REVISION = "000000000000"


@contextmanager
def cluster() -> Iterator[dict[str, Any]]:
    path = Path(os.environ["STANDIN_STATE"])
    with open(f"{path}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = json.loads(path.read_text()) if path.exists() else {}
        state.setdefault("deployments", {})
        state.setdefault("objects", {})
        state.setdefault("calls", [])
        state.setdefault("behaviour", {})
        yield state
        # Readers that take no lock (the tests) see the old or the new file, never half.
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(state, indent=1))
        partial.replace(path)


def option(argv: list[str], name: str) -> str | None:
    for index, word in enumerate(argv):
        if word == name:
            return argv[index + 1]
        if word.startswith(f"{name}="):
            return word.split("=", 1)[1]
    return None


def documents(path: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(Path(path).read_text()) if doc]


def key(doc: dict[str, Any], namespace: str | None = None) -> str:
    metadata = doc["metadata"]
    return f"{doc['kind']}/{metadata.get('namespace', namespace)}/{metadata['name']}"


def live_deployment(name: str, record: dict[str, Any]) -> dict[str, Any]:
    namespace, _, short = name.partition("/")
    annotations = dict(record.get("annotations", {}))
    annotations[REVISION] = str(record["revision"])
    metadata = {"name": short, "namespace": namespace, "annotations": annotations}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {**metadata, "labels": record.get("labels", {})},
        "spec": {"template": record["template"]},
    }


def replica_sets(name: str, record: dict[str, Any]) -> list[dict[str, Any]]:
    namespace, _, short = name.partition("/")
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{short}-{revision}",
                "namespace": namespace,
                "annotations": {REVISION: revision},
                "ownerReferences": [{"kind": "Deployment", "name": short}],
            },
            "spec": {"template": template},
        }
        for revision, template in record["history"].items()
    ]


def matches(item: dict[str, Any], selector: str | None) -> bool:
    labels = item.get("metadata", {}).get("labels") or {}
    wanted = dict(pair.split("=", 1) for pair in (selector or "").split(",") if pair)
    return all(labels.get(name) == value for name, value in wanted.items())


def image_of(template: dict[str, Any]) -> str:
    return str(template["spec"]["containers"][0]["image"])


def revision_env(template: dict[str, Any], container: str) -> str | None:
    found = [c for c in template["spec"]["containers"] if c["name"] == container]
    for variable in found[0].get("env", []) if found else []:
        if variable["name"] == "MERIDIAN_BUILD_REVISION":
            return str(variable["value"])
    return None


def do_get(argv: list[str], state: dict[str, Any]) -> int:
    if "-f" in argv:
        items = []
        for doc in documents(str(option(argv, "-f"))):
            found = key(doc)
            if doc["kind"] == "Deployment":
                name = f"{doc['metadata']['namespace']}/{doc['metadata']['name']}"
                if name in state["deployments"]:
                    items.append(live_deployment(name, state["deployments"][name]))
            elif found in state["objects"]:
                items.append(state["objects"][found])
        print(json.dumps({"kind": "List", "items": items}))
        return 0
    namespace, what = option(argv, "-n"), argv[argv.index("get") + 1]
    if what == "deployment" and "-l" not in argv:
        name = argv[argv.index("deployment") + 1]
        record = state["deployments"].get(f"{namespace}/{name}")
        if record is not None:
            print(json.dumps(live_deployment(f"{namespace}/{name}", record)))
        return 0
    kinds = set(what.split(","))
    listed = []
    for name, record in state["deployments"].items():
        if name.startswith(f"{namespace}/"):
            listed += [live_deployment(name, record)] if "deployment" in kinds else []
            listed += replica_sets(name, record) if "replicaset" in kinds else []
    for found, doc in state["objects"].items():
        kind, object_namespace, _ = found.split("/", 2)
        if object_namespace == namespace and kind.lower() in kinds:
            listed.append(doc)
    items = [item for item in listed if matches(item, option(argv, "-l"))]
    print(json.dumps({"kind": "List", "items": items}))
    return 0


def do_delete(argv: list[str], state: dict[str, Any]) -> int:
    namespace, at = option(argv, "-n"), argv.index("delete")
    kind, name = argv[at + 1], argv[at + 2]
    if kind == "deployment":
        state["deployments"].pop(f"{namespace}/{name}", None)
    for found in list(state["objects"]):
        if found.lower() == f"{kind}/{namespace}/{name}".lower():
            del state["objects"][found]
    print(f"{kind} {name} deleted")
    return 0


def do_apply(argv: list[str], state: dict[str, Any]) -> int:
    for doc in documents(str(option(argv, "-f"))):
        if doc["kind"] != "Deployment":
            state["objects"][key(doc)] = doc
            continue
        name = f"{doc['metadata']['namespace']}/{doc['metadata']['name']}"
        template = doc["spec"]["template"]
        record = state["deployments"].setdefault(name, {"revision": 0, "history": {}})
        record["annotations"] = doc["metadata"].get("annotations", {})
        record["labels"] = doc["metadata"].get("labels", {})
        if record.get("template") != template:
            record["revision"] += 1
            record["history"][str(record["revision"])] = template
            record["template"] = template
    return 0


def do_rollout(argv: list[str]) -> int:
    namespace = option(argv, "-n")
    name = argv[argv.index("rollout") + 2].split("/", 1)[1]
    action = argv[argv.index("rollout") + 1]
    if action == "undo":
        with cluster() as state:
            record = state["deployments"][f"{namespace}/{name}"]
            wanted = str(option(argv, "--to-revision"))
            template = record["history"].pop(wanted)
            record["revision"] = (
                max(int(r) for r in [*record["history"], str(record["revision"])]) + 1
            )
            record["history"][str(record["revision"])] = template
            record["template"] = template
        print(f"deployment.apps/{name} rolled back")
        return 0
    with cluster() as state:
        image = image_of(state["deployments"][f"{namespace}/{name}"]["template"])
        outcome = state["behaviour"].get(image, "ok")
    if outcome == "fail":
        print(f'error: deployment "{name}" exceeded its progress deadline')
        return 1
    if outcome == "hang":
        time.sleep(float(str(option(argv, "--timeout")).rstrip("s")))
        print("error: timed out waiting for the condition")
        return 1
    print(f'deployment "{name}" successfully rolled out')
    return 0


def do_port_forward(argv: list[str]) -> int:
    namespace = option(argv, "-n")
    service = argv[argv.index("port-forward") + 1].split("/", 1)[1]
    with cluster() as state:
        record = state["deployments"][f"{namespace}/{service}"]
        revision = revision_env(record["template"], service)
        if service in state["behaviour"].get("stale_version", []):
            revision = STALE_REVISION

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            bodies = {
                "/health/ready": {"status": "ready"},
                "/version": {"name": service, "revision": revision, "version": "0.0.0"},
            }
            body = bodies.get(self.path)
            self.send_response(200 if body else 404)
            self.end_headers()
            self.wfile.write(json.dumps(body or {}).encode())

        def log_message(self, *_: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Answer)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"Forwarding from 127.0.0.1:{server.server_port} -> 8080", flush=True)
    server.serve_forever()
    return 0


def main(argv: list[str]) -> int:
    with cluster() as state:
        state["calls"].append(argv)
        state.setdefault("pids", []).append(os.getpid())
    if argv[0] == "kustomize":
        real = os.environ["STANDIN_REAL_KUBECTL"]
        os.execv(real, ["kubectl", *argv])  # noqa: S606 - the real kubectl renders
    if "rollout" in argv:
        return do_rollout(argv)
    if "port-forward" in argv:
        return do_port_forward(argv)
    with cluster() as state:
        if "get" in argv:
            return do_get(argv, state)
        if "apply" in argv:
            return do_apply(argv, state)
        if "delete" in argv:
            return do_delete(argv, state)
    print(f"kubectl stand-in: unsupported call {argv}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
