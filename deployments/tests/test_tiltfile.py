"""The Tiltfile runs under starlark-go (the interpreter Tilt embeds) against stand-ins
for Tilt's API that take exactly the parameters of Tilt's API reference, in cluster and
--local mode, and declares the expected resources, image builds, live updates and
port-forwards.

Run from the repository root; cluster mode renders overlays/dev with `kubectl kustomize`.
"""

from __future__ import annotations

import inspect
import re
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import starlark_go
import yaml

Obj = dict[str, Any]

# Parameters, in order, of the Tilt functions a Tiltfile may call (docs.tilt.dev/api.html);
# "!" marks required ones. A call with any other argument fails, as it does in Tilt.
TILT_API = {
    "version_settings": "check_updates constraint",
    "config.define_bool": "name! args usage",
    "config.define_string_list": "name! args usage",
    "config.parse": "",
    "config.set_enabled_resources": "resources!",
    "os.path.exists": "path!",
    "fail": "msg!",
    "local": "command! quiet command_bat echo_off env dir stdin",
    "read_yaml": "path! default",
    "k8s_context": "",
    "allow_k8s_contexts": "contexts!",
    "kustomize": "pathToDir! kustomize_bin flags",
    "k8s_yaml": "yaml! allow_duplicates",
    "watch_file": "file_path!",
    "k8s_resource": "workload new_name port_forwards extra_pod_selectors trigger_mode resource_deps objects"
    " auto_init pod_readiness links labels discovery_strategy",
    "custom_build": "ref! command! deps! tag disable_push skips_local_docker live_update match_in_env_vars"
    " ignore entrypoint command_bat_val outputs_image_ref_to command_bat image_deps env dir",
    "local_resource": "name! cmd deps trigger_mode resource_deps ignore auto_init serve_cmd cmd_bat"
    " serve_cmd_bat allow_parallel links labels env serve_env readiness_probe dir serve_dir",
    "sync": "local_path! remote_path!",
    "fall_back_on": "files!",
    "run": "cmd! trigger echo_off",
    "port_forward": "local_port! container_port name link_path host",
    "probe": "initial_delay_secs timeout_secs period_secs success_threshold failure_threshold exec http_get"
    " tcp_socket",
    "http_get_action": "port! host scheme path",
    "tcp_socket_action": "port! host",
    "exec_action": "command!",
}
MANUAL = "TRIGGER_MODE_MANUAL"

TILTFILE = Path("Tiltfile")
PROCESSES = Path("deployments/local/processes.yaml")
DEV_OVERLAY = "deployments/k8s/overlays/dev"
SITE_PACKAGES = "/app/lib/python3.11/site-packages/"
REBUILD_DEPS = ["api/proto", "3rdparty/python", "deployments/docker", "build-support"]
IMAGE_DEPS = {"libs/meridian_chassis", *REBUILD_DEPS}
SERVICE_PORTS = {"current-account": 8081, "financial-accounting": 8082, "position-keeping": 8083}
BACKING_PORTS = {
    "cockroachdb": {26257: 26257, 8090: 8080},
    "redis": {6379: 6379},
    "kafka": {9092: 9094},
}
BACKING_DEPS = {"cockroachdb-init", "redis", "kafka"}
LOCAL_CONTEXTS = [
    "kind-kind",
    "k3d-meridian",
    "minikube",
    "docker-desktop",
    "rancher-desktop",
    "orbstack",
]
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job"}
TEST_CMD = "./pants test --changed-since=origin/main --changed-dependents=transitive"


class TiltfileError(Exception):
    pass


def kubectl_kustomize(path: str) -> str:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl not found on PATH"
    return subprocess.run(
        [kubectl, "kustomize", path], check=True, capture_output=True, text=True
    ).stdout


def run_argv(argv: Any) -> str:
    assert isinstance(argv, list), "local() takes argv, not a shell string"
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def fail(arguments: Obj) -> None:
    raise TiltfileError(arguments["msg"])


def starlark_name(name: str) -> str:
    """config.parse -> config__parse, os.path.exists -> os_path__exists"""
    return name.replace("os.path.", "os_path__").replace("config.", "config__")


def value_of(function: str) -> Callable[[Obj], Obj]:
    """What Tilt's value-building functions (sync, probe, ...) stand in as."""
    return lambda arguments: {"fn": function, **arguments}


class Tilt:
    """Evaluates the Tiltfile and records every call: calls[function] = [arguments]."""

    def __init__(self, flags: Obj, context: str) -> None:
        self.calls: defaultdict[str, list[Obj]] = defaultdict(list)
        self.yaml: list[Obj] = []
        results: dict[str, Callable[[Obj], Any]] = {
            "config.parse": lambda _: dict(flags),
            "os.path.exists": lambda a: Path(a["path"]).exists(),
            "fail": fail,
            "local": lambda a: run_argv(a["command"]),
            "read_yaml": lambda a: yaml.safe_load(Path(a["path"]).read_text()),
            "k8s_context": lambda _: context,
            "kustomize": lambda a: kubectl_kustomize(a["pathToDir"]),
            "k8s_yaml": lambda a: self.yaml.extend(d for d in yaml.safe_load_all(a["yaml"]) if d),
        }
        # The bindings keep no reference to these functions and crash on a freed one.
        self.functions: Obj = {
            starlark_name(name): self.stand_in(name, params, results.get(name, value_of(name)))
            for name, params in TILT_API.items()
        }
        self.functions.update(TRIGGER_MODE_AUTO="TRIGGER_MODE_AUTO", TRIGGER_MODE_MANUAL=MANUAL)

    def stand_in(self, name: str, params: str, result: Callable[[Obj], Any]) -> Callable[..., Any]:
        signature = inspect.Signature(
            [
                inspect.Parameter(
                    p.rstrip("!"),
                    inspect.Parameter.POSITIONAL_OR_KEYWORD,
                    default=inspect.Parameter.empty if p.endswith("!") else None,
                )
                for p in params.split()
            ]
        )

        def call(*args: Any, **kwargs: Any) -> Any:
            arguments = signature.bind(*args, **kwargs).arguments
            self.calls[name].append(arguments)
            return result(arguments)

        call.__name__ = name
        return call

    def by(self, function: str, key: str) -> dict[str, Obj]:
        return {c[key]: c for c in self.calls[function]}


def evaluate(local: bool = False, context: str = "kind-meridian") -> Tilt:
    tilt = Tilt({"local": True} if local else {}, context)
    # Tilt's config and os.path modules become flat names (see starlark_name):
    # starlark-go's Python bindings pass plain values and functions, not modules.
    source = re.sub(
        r"\b(?:config|os\.path)\.\w+\(", lambda m: starlark_name(m[0]), TILTFILE.read_text()
    )
    # The dialect Tilt enables: top-level if/for, sets, recursion.
    starlark_go.configure_starlark(allow_set=True, allow_global_reassign=True, allow_recursion=True)
    interpreter = starlark_go.Starlark()
    interpreter.set(**tilt.functions)
    interpreter.exec(source, filename=str(TILTFILE))
    return tilt


def service_packages() -> list[str]:
    return sorted(p.parent.name for p in Path("services").glob("*/BUILD"))


def forwards(resource: Obj) -> dict[int, int]:
    """A resource's port_forwards (int, 'port', 'local:container', port_forward()) as {local: container}."""
    specs = resource.get("port_forwards") or []
    ports = {}
    for pf in specs if isinstance(specs, list) else [specs]:
        if isinstance(pf, dict):
            ports[pf["local_port"]] = pf.get("container_port") or pf["local_port"]
        else:
            parts = str(pf).split(":")
            ports[int(parts[-2] if len(parts) > 1 else parts[0])] = int(parts[-1])
    return ports


def container_ports(workload: Obj) -> set[int]:
    return {
        p["containerPort"]
        for c in workload["spec"]["template"]["spec"]["containers"]
        for p in c.get("ports", [])
    }


@pytest.fixture(scope="module")
def cluster() -> Tilt:
    return evaluate()


@pytest.fixture(scope="module")
def processes() -> list[Obj]:
    assert PROCESSES.exists(), f"{PROCESSES} is missing"
    return yaml.safe_load(PROCESSES.read_text())["processes"]  # type: ignore[no-any-return]


def test_cluster_mode_deploys_the_dev_overlay(cluster: Tilt) -> None:
    assert cluster.yaml == [d for d in yaml.safe_load_all(kubectl_kustomize(DEV_OVERLAY)) if d]
    assert {c["name"] for c in cluster.calls["config.define_bool"]} == {"local"}


@pytest.mark.parametrize("context", LOCAL_CONTEXTS)
def test_local_clusters_are_allowed(context: str) -> None:
    assert [c["contexts"] for c in evaluate(context=context).calls["allow_k8s_contexts"]] == [
        context
    ]


def test_other_clusters_are_not_allowed() -> None:
    assert not evaluate(context="gke_meridian_europe-west1_production").calls["allow_k8s_contexts"]


def test_every_service_is_built_with_pants_and_live_updated(cluster: Tilt) -> None:
    packages = service_packages()
    assert packages, "no services/*/BUILD found: run from the repository root"
    images = cluster.by("custom_build", "ref")
    assert set(images) == {"meridian/" + p.replace("_", "-") for p in packages}
    for pkg in packages:
        build = images["meridian/" + pkg.replace("_", "-")]
        assert build["command"] == f"tools/tilt-build-image.sh services/{pkg}"
        assert set(build["deps"]) == {f"services/{pkg}"} | IMAGE_DEPS
        first, *steps = build["live_update"]
        assert first == {"fn": "fall_back_on", "files": [*REBUILD_DEPS, f"services/{pkg}/BUILD"]}
        assert "**/*_test.py" in build["ignore"], "editing a test must not touch the image"
        # The dev image has tar and rm stand-ins but no shell: only syncs, no run() steps.
        assert [s["fn"] for s in steps] == ["sync"] * len(steps)
        assert not build.get("entrypoint")
        assert {s["local_path"]: s["remote_path"] for s in steps if s["fn"] == "sync"} == {
            f"services/{pkg}": SITE_PACKAGES + pkg,
            "libs/meridian_chassis": SITE_PACKAGES + "meridian_chassis",
        }
        assert all(Path(s["local_path"]).is_dir() for s in steps), "a sync source does not exist"


def test_every_workload_is_a_labelled_resource(cluster: Tilt) -> None:
    workloads = {d["metadata"]["name"] for d in cluster.yaml if d["kind"] in WORKLOAD_KINDS}
    resources = cluster.by("k8s_resource", "workload")
    assert set(resources) == workloads
    services = {p.replace("_", "-") for p in service_packages()}
    for name, resource in resources.items():
        deps = set(resource.get("resource_deps") or [])
        assert resource["labels"] == (["services"] if name in services else ["backing"]), name
        assert deps <= workloads - {name}, f"{name}: unknown resource_deps"
        assert name not in services or deps >= BACKING_DEPS, f"{name} must wait for {BACKING_DEPS}"


def test_port_forwards_are_unique_and_reach_container_ports(cluster: Tilt) -> None:
    workloads = {d["metadata"]["name"]: d for d in cluster.yaml if d["kind"] in WORKLOAD_KINDS}
    actual = {c["workload"]: forwards(c) for c in cluster.calls["k8s_resource"] if forwards(c)}
    host_ports = [port for ports in actual.values() for port in ports]
    assert len(host_ports) == len(set(host_ports)), f"host ports used twice: {sorted(host_ports)}"
    for name, ports in actual.items():
        assert set(ports.values()) <= container_ports(
            workloads[name]
        ), f"{name}: forwards to an unexposed port"
    assert (
        actual == {n: {p: 8080} for n, p in SERVICE_PORTS.items() if n in workloads} | BACKING_PORTS
    )


def test_manual_test_resource(cluster: Tilt) -> None:
    resources = cluster.by("local_resource", "name")
    assert set(resources) == {"test"}, "cluster mode runs no other local process"
    test = resources["test"]
    assert test["cmd"] == TEST_CMD
    assert test.get("trigger_mode") == MANUAL
    assert test.get("auto_init") is False
    assert test["labels"] == ["tests"]


def test_every_service_directory_has_a_host_port() -> None:
    assert {p.replace("_", "-") for p in service_packages()} <= set(SERVICE_PORTS)


def test_local_mode_serves_every_process(processes: list[Obj]) -> None:
    tilt = evaluate(local=True)
    for cluster_call in ("k8s_yaml", "custom_build", "k8s_resource", "allow_k8s_contexts"):
        assert not tilt.calls[cluster_call], f"--local must not call {cluster_call}"
    resources = tilt.by("local_resource", "name")
    assert set(resources) == {p["name"] for p in processes} | {"test"}
    ports = [p["port"] for p in processes]
    assert len(ports) == len(set(ports)), f"duplicate local ports {ports}"
    backing = {p["name"] for p in processes if "services" not in p.get("labels", [])}
    for p in processes:
        resource = resources[p["name"]]
        assert resource["serve_cmd"] == p["cmd"]
        assert resource["cmd"] == p.get("build", "")
        assert resource["serve_env"] == p.get("env", {})
        assert resource["labels"] == p.get("labels", [])
        assert resource["deps"] == p.get("deps", [])
        check = resource["readiness_probe"]
        if p.get("ready_path"):
            assert check["http_get"] == {
                "fn": "http_get_action",
                "port": p["port"],
                "path": p["ready_path"],
            }
        else:
            assert check["tcp_socket"] == {"fn": "tcp_socket_action", "port": p["port"]}
        if "services" in p.get("labels", []):
            assert set(resource["resource_deps"]) == backing
            assert (
                SERVICE_PORTS.get(p["name"]) == p["port"]
            ), f"{p['name']}: another port than in cluster mode"


def test_local_ports_are_the_cluster_port_forwards(processes: list[Obj], cluster: Tilt) -> None:
    forwarded = {port for c in cluster.calls["k8s_resource"] for port in forwards(c)}
    assert {p["port"] for p in processes} <= forwarded
