"""A stand-in for kubectl, for the deploy tool's tests: no cluster exists here.

It keeps a pretend cluster in a JSON file (STANDIN_STATE), records every call (and the
process id that made it), renders with the real `kubectl kustomize`
(STANDIN_REAL_KUBECTL), and models what the deploy relies on:
- `apply` and `replace` store objects; a Deployment whose pod template changes gets a
  new revision, and a template equal to one in its history takes that ReplicaSet back
  under a new revision number (as the Deployment controller does); each revision kept
  is a ReplicaSet (tests drop history to model revisionHistoryLimit); only `delete`
  removes anything;
- each Deployment has one pod of its current ReplicaSet, whose state and the
  Deployment's status follow the pod template's image in the state's `behaviour`:
  `ok` (ready, runs that digest), `foreign` (ready, but the kubelet reports another
  digest), `hang` (never scheduled), `fail` (progress deadline exceeded), `pull`
  (ImagePullBackOff), `crash` (CrashLoopBackOff), `startup` (fails its startup probe
  and is restarted); the failing ones come with the warning events a kubelet writes;
- `port-forward` serves /health/ready and /version on a local port, with the revision
  of the Deployment's current pod template (or a stale one for the services listed in
  `behaviour.stale_version`);
- `behaviour.apply_seconds`: `apply` waits that long before it applies (a slow API).
"""

from __future__ import annotations

import copy
import fcntl
import hashlib
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
FOREIGN_DIGEST = "sha256:" + "f" * 64


@contextmanager
def cluster() -> Iterator[dict[str, Any]]:
    path = Path(os.environ["STANDIN_STATE"])
    with open(f"{path}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = json.loads(path.read_text()) if path.exists() else {}
        for part in ("deployments", "objects", "behaviour"):
            state.setdefault(part, {})
        for part in ("calls", "pids"):
            state.setdefault(part, [])
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


def documents(argv: list[str]) -> list[dict[str, Any]]:
    source = str(option(argv, "-f"))
    text = sys.stdin.read() if source == "-" else Path(source).read_text()
    return [doc for doc in yaml.safe_load_all(text) if doc]


def key(doc: dict[str, Any]) -> str:
    metadata = doc["metadata"]
    return f"{doc['kind']}/{metadata.get('namespace')}/{metadata['name']}"


def template_hash(template: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


def image_of(template: dict[str, Any]) -> str:
    return str(template["spec"]["containers"][0]["image"])


def outcome_of(state: dict[str, Any], record: dict[str, Any]) -> str:
    return str(state["behaviour"].get(image_of(record["template"]), "ok"))


def pod_of(name: str, record: dict[str, Any], outcome: str) -> dict[str, Any]:
    namespace, _, short = name.partition("/")
    template = record["template"]
    digest_hash = template_hash(template)
    container = template["spec"]["containers"][0]
    image = image_of(template)
    ready = outcome in ("ok", "foreign")
    repository = image.partition("@")[0]
    image_id = f"{repository}@{FOREIGN_DIGEST}" if outcome == "foreign" else image
    status: dict[str, Any] = {"name": container["name"], "image": image, "ready": ready}
    status["restartCount"] = 0
    if ready:
        status |= {"imageID": image_id, "state": {"running": {}}}
    elif outcome == "pull":
        message = f'Back-off pulling image "{image}"'
        status["state"] = {"waiting": {"reason": "ImagePullBackOff", "message": message}}
    elif outcome == "crash":
        status |= {"imageID": image, "restartCount": 3}
        status["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}}
        status["lastState"] = {"terminated": {"reason": "Error", "exitCode": 1}}
    elif outcome == "startup":
        status |= {"imageID": image, "restartCount": 1, "state": {"running": {}}}
        status["lastState"] = {"terminated": {"reason": "Error", "exitCode": 137}}
    pod_status: dict[str, Any] = {
        "phase": "Pending" if outcome in ("hang", "pull") else "Running",
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    if outcome != "hang":
        pod_status["containerStatuses"] = [status]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{short}-{digest_hash}-0",
            "namespace": namespace,
            "labels": {**template["metadata"].get("labels", {}), "pod-template-hash": digest_hash},
            "ownerReferences": [{"kind": "ReplicaSet", "name": f"{short}-{digest_hash}"}],
        },
        "spec": template["spec"],
        "status": pod_status,
    }


EVENTS = {
    "pull": (
        "Failed",
        'Failed to pull image "{image}": rpc error: code = NotFound desc = '
        'failed to pull and unpack image "{image}": not found',
    ),
    "crash": ("BackOff", "Back-off restarting failed container {container} in pod {pod}"),
    "startup": (
        "Unhealthy",
        'Startup probe failed: Get "http://10.244.0.7:8080/health/startup": '
        "dial tcp 10.244.0.7:8080: connect: connection refused",
    ),
}


def events_of(state: dict[str, Any], namespace: str, pod_name: str) -> list[dict[str, Any]]:
    for name, record in state["deployments"].items():
        pod = pod_of(name, record, outcome_of(state, record))
        if name.startswith(f"{namespace}/") and pod["metadata"]["name"] == pod_name:
            outcome = outcome_of(state, record)
            if outcome not in EVENTS:
                return []
            reason, message = EVENTS[outcome]
            container = record["template"]["spec"]["containers"][0]["name"]
            text = message.format(
                image=image_of(record["template"]), container=container, pod=pod_name
            )
            scheduled = {"type": "Normal", "reason": "Scheduled", "message": "assigned"}
            warning = {"type": "Warning", "reason": reason, "message": text}
            return [
                {**scheduled, "lastTimestamp": "2026-12-07T05:00:00Z"},
                {**warning, "lastTimestamp": "2026-12-07T05:00:30Z"},
            ]
    return []


def live_deployment(state: dict[str, Any], name: str, record: dict[str, Any]) -> dict[str, Any]:
    namespace, _, short = name.partition("/")
    annotations = dict(record.get("annotations", {}))
    annotations[REVISION] = str(record["revision"])
    metadata = {"name": short, "namespace": namespace, "annotations": annotations}
    outcome = outcome_of(state, record)
    done = outcome in ("ok", "foreign")
    replicas = int(record.get("replicas", 1))
    status: dict[str, Any] = {
        "observedGeneration": record["revision"],
        "replicas": replicas if done else replicas + 1,
        "updatedReplicas": replicas,
        "availableReplicas": replicas if done else 0,
    }
    if outcome == "fail":
        status["conditions"] = [
            {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": f'ReplicaSet "{short}-{template_hash(record["template"])}" has '
                "timed out progressing.",
            }
        ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            **metadata,
            "labels": record.get("labels", {}),
            "generation": record["revision"],
        },
        "spec": {**record.get("spec", {}), "template": record["template"]},
        "status": status,
    }


def replica_sets(name: str, record: dict[str, Any]) -> list[dict[str, Any]]:
    namespace, _, short = name.partition("/")
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{short}-{template_hash(template)}",
                "namespace": namespace,
                "labels": {"pod-template-hash": template_hash(template)},
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


def revision_env(template: dict[str, Any], container: str) -> str | None:
    found = [c for c in template["spec"]["containers"] if c["name"] == container]
    for variable in found[0].get("env", []) if found else []:
        if variable["name"] == "MERIDIAN_BUILD_REVISION":
            return str(variable["value"])
    return None


def listing(items: list[dict[str, Any]]) -> int:
    print(json.dumps({"kind": "List", "items": items}))
    return 0


def do_get(argv: list[str], state: dict[str, Any]) -> int:
    if "-f" in argv:
        items = []
        for doc in documents(argv):
            found = key(doc)
            if doc["kind"] == "Deployment":
                name = f"{doc['metadata']['namespace']}/{doc['metadata']['name']}"
                if name in state["deployments"]:
                    items.append(live_deployment(state, name, state["deployments"][name]))
            elif found in state["objects"]:
                items.append(state["objects"][found])
        return listing(items)
    namespace, what = option(argv, "-n"), argv[argv.index("get") + 1]
    if what == "events":
        pod = str(option(argv, "--field-selector")).removeprefix("involvedObject.name=")
        return listing(events_of(state, str(namespace), pod))
    kinds = set(what.split(","))
    listed = []
    for name, record in state["deployments"].items():
        if name.startswith(f"{namespace}/"):
            live = live_deployment(state, name, record)
            listed += [live] if "deployment" in kinds else []
            listed += replica_sets(name, record) if "replicaset" in kinds else []
            if "pod" in kinds:
                listed.append(pod_of(name, record, outcome_of(state, record)))
    for found, doc in state["objects"].items():
        kind, object_namespace, _ = found.split("/", 2)
        if object_namespace == namespace and kind.lower() in kinds:
            listed.append(doc)
    return listing([item for item in listed if matches(item, option(argv, "-l"))])


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


def store_deployment(state: dict[str, Any], doc: dict[str, Any]) -> None:
    name = f"{doc['metadata']['namespace']}/{doc['metadata']['name']}"
    template = doc["spec"]["template"]
    record = state["deployments"].setdefault(name, {"revision": 0, "history": {}})
    annotations = dict(doc["metadata"].get("annotations") or {})
    annotations.pop(REVISION, None)
    record["annotations"] = annotations
    record["labels"] = doc["metadata"].get("labels", {})
    record["spec"] = {k: v for k, v in doc["spec"].items() if k != "template"}
    if record.get("template") == template:
        return
    # A template the history has: that ReplicaSet comes back, renumbered.
    for revision, earlier in list(record["history"].items()):
        if earlier == template:
            del record["history"][revision]
    record["revision"] = max([record["revision"], *map(int, record["history"])]) + 1
    record["history"][str(record["revision"])] = template
    record["template"] = copy.deepcopy(template)


def do_store(argv: list[str], state: dict[str, Any]) -> int:
    """apply and replace: here both set each object to the given document."""
    for doc in documents(argv):
        if doc["kind"] == "Deployment":
            store_deployment(state, doc)
        else:
            state["objects"][key(doc)] = doc
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
        state["pids"].append(os.getpid())
        slow = float(state["behaviour"].get("apply_seconds", 0))
    if argv[0] == "kustomize":
        real = os.environ["STANDIN_REAL_KUBECTL"]
        os.execv(real, ["kubectl", *argv])  # noqa: S606 - the real kubectl renders
    if "port-forward" in argv:
        return do_port_forward(argv)
    if "apply" in argv:
        time.sleep(slow)
    with cluster() as state:
        if "get" in argv:
            return do_get(argv, state)
        if "apply" in argv or "replace" in argv:
            return do_store(argv, state)
        if "delete" in argv:
            return do_delete(argv, state)
    print(f"kubectl stand-in: unsupported call {argv}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
