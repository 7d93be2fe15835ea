"""The real Tiltfile runs under starlark-go (the interpreter Tilt embeds) against stand-ins
for Tilt's API that take exactly the parameters of Tilt's API reference, in cluster and
--local mode; the tests assert on what it declares: resources, image builds, live
updates, port-forwards, the YAML it deploys, and the order of its context check.

The stand-in for `local` enforces Tilt's own rule: it refuses to run while the kube
context is neither one Tilt takes for a local cluster (by its kubeconfig cluster's
name, as github.com/tilt-dev/clusterid decides) nor allowed by `allow_k8s_contexts`.
Each evaluation gets a kubeconfig of its own naming the context and its cluster. Commands really run (kubectl kustomize, tools/image-tags.sh),
from the repository root or a Pants sandbox made into a git checkout.
"""

from __future__ import annotations

import inspect
import json
import re
import shutil
import subprocess
import tempfile
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
    "update_settings": "max_parallel_updates k8s_upsert_timeout_secs suppress_unused_image_warnings",
    "docker_prune_settings": "disable max_age_mins num_builds interval_hrs keep_recent",
    "config.define_bool": "name! args usage",
    "config.define_string_list": "name! args usage",
    "config.parse": "",
    "config.set_enabled_resources": "resources!",
    "os.path.exists": "path!",
    "os.getenv": "key! default",
    "fail": "msg!",
    "local": "command! quiet command_bat echo_off env dir stdin",
    "read_yaml": "path! default",
    "read_json": "path! default",
    "decode_yaml_stream": "yaml!",
    "encode_yaml_stream": "objs!",
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
CATALOG = Path("services/catalog.json")
PROCESSES = Path("deployments/local/processes.yaml")
DEV_OVERLAY = "deployments/k8s/overlays/dev"
SITE_PACKAGES = "/app/lib/python3.11/site-packages/"
# Where a Pants-built pex lands: dist/<target dir, dots for slashes>/<target name>.pex
PEX_PATH = re.compile(r"^dist/(?P<dir>[\w.]+)/(?P<name>[\w-]+)\.pex$")
# The backing servers in the catalog, and CockroachDB's console besides its SQL port.
BACKING = json.loads(CATALOG.read_text())["backing"]
BACKING_PORTS = {b["server"]: {b["port"]: b["forwarded_port"]} for b in BACKING}
BACKING_PORTS["cockroachdb"][8090] = 8080
# Services wait for the database's init Job (it creates their databases), not the server.
BACKING_DEPS = {"cockroachdb-init" if b["need"] == "database" else b["server"] for b in BACKING}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job"}
# What Tilt groups by itself: Services follow the pods they select.
AUTO_GROUPED_KINDS = WORKLOAD_KINDS | {"Service"}
BUILD_METADATA = ("MERIDIAN_BUILD_REVISION", "MERIDIAN_BUILD_VERSION")
TEST_CMD = "./pants test --changed-since=origin/main --changed-dependents=transitive"
PRODUCTION = "gke_meridian_europe-west1_production"
# Tilt's dev-cluster rule (clusterid.ProductFromContext + IsDevCluster, as of Tilt 0.37):
# the kubeconfig cluster's name, else where the kubeconfig or the cluster's CA lives.
TILT_DEV_CLUSTER_NAME = re.compile(
    r"^(kind|orbstack|(kind-|k3d-|minikube|docker-desktop|docker-for-desktop-cluster|microk8s"
    r"|rancher-desktop|colima|api-crc-testing|krucible-).*)$"
)


def tilt_takes_for_local(context: str, kubeconfig: Path, home: Path) -> bool:
    if not context:
        return True
    config = yaml.safe_load(kubeconfig.read_text()) if kubeconfig.exists() else {}
    contexts = {c["name"]: c["context"] for c in config.get("contexts") or []}
    if context not in contexts:
        return False
    cluster = contexts[context].get("cluster", "")
    clusters = {c["name"]: c["cluster"] for c in config.get("clusters") or []}
    authority = clusters.get(cluster, {}).get("certificate-authority", "")
    return bool(
        TILT_DEV_CLUSTER_NAME.match(cluster)
        or kubeconfig.is_relative_to(home / ".config" / "k3d")
        or kubeconfig.name.startswith("kind-config-")
        or authority.startswith(f"{home}/.minikube/")
    )


class TiltfileError(Exception):
    pass


def kubectl_kustomize(path: str) -> str:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl not found on PATH"
    return subprocess.run(
        [kubectl, "kustomize", path], check=True, capture_output=True, text=True
    ).stdout


def run_command(command: Any) -> str:
    argv = command if isinstance(command, list) else ["sh", "-c", command]
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def fail(arguments: Obj) -> None:
    raise TiltfileError(arguments["msg"])


def starlark_name(name: str) -> str:
    """config.parse -> config__parse, os.path.exists -> os_path__exists, os.getenv -> os__getenv"""
    return (
        name.replace("os.path.", "os_path__").replace("os.", "os__").replace("config.", "config__")
    )


def value_of(function: str) -> Callable[[Obj], Obj]:
    """What Tilt's value-building functions (sync, probe, ...) stand in as."""
    return lambda arguments: {"fn": function, **arguments}


class Tilt:
    """Evaluates the Tiltfile and records every call: calls[function] = [arguments], and
    their order in `sequence`.

    The environment has HOME and KUBECONFIG only: `kubeconfig` (which may not exist)."""

    def __init__(self, flags: Obj, context: str, kubeconfig: Path, home: Path) -> None:
        self.calls: defaultdict[str, list[Obj]] = defaultdict(list)
        self.sequence: list[str] = []
        self.yaml: list[Obj] = []
        self.context = context
        self.context_allowed = tilt_takes_for_local(context, kubeconfig, home)
        environment = {"HOME": str(home), "KUBECONFIG": str(kubeconfig)}
        results: dict[str, Callable[[Obj], Any]] = {
            "config.parse": lambda _: dict(flags),
            "os.path.exists": lambda a: Path(a["path"]).exists(),
            "os.getenv": lambda a: environment.get(a["key"], a.get("default")),
            "fail": fail,
            "local": self.local,
            "read_yaml": lambda a: self.read_file(a, yaml.safe_load),
            "read_json": lambda a: self.read_file(a, json.loads),
            "decode_yaml_stream": lambda a: [d for d in yaml.safe_load_all(a["yaml"]) if d],
            "encode_yaml_stream": lambda a: yaml.safe_dump_all(a["objs"]),
            "k8s_context": lambda _: context,
            "allow_k8s_contexts": self.allow_k8s_contexts,
            "kustomize": lambda a: kubectl_kustomize(a["pathToDir"]),
            "k8s_yaml": lambda a: self.yaml.extend(d for d in yaml.safe_load_all(a["yaml"]) if d),
        }
        # The bindings keep no reference to these functions and crash on a freed one.
        self.functions: Obj = {
            starlark_name(name): self.stand_in(name, params, results.get(name, value_of(name)))
            for name, params in TILT_API.items()
        }
        self.functions.update(TRIGGER_MODE_AUTO="TRIGGER_MODE_AUTO", TRIGGER_MODE_MANUAL=MANUAL)

    @staticmethod
    def read_file(arguments: Obj, parse: Callable[[str], Any]) -> Any:
        """read_yaml, read_json: the parsed file, or `default` when it does not exist."""
        path = Path(arguments["path"])
        if not path.exists() and "default" in arguments:
            return arguments["default"]
        return parse(path.read_text())

    def local(self, arguments: Obj) -> str:
        if not self.context_allowed:
            # Tilt's message, verbatim but for the context.
            raise TiltfileError(
                f"Refusing to run 'local' because {self.context} might be a production kube context."
            )
        return run_command(arguments["command"])

    def allow_k8s_contexts(self, arguments: Obj) -> None:
        contexts = arguments["contexts"]
        if self.context in (contexts if isinstance(contexts, list) else [contexts]):
            self.context_allowed = True

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
            self.sequence.append(name)
            return result(arguments)

        call.__name__ = name
        return call

    def by(self, function: str, key: str) -> dict[str, Obj]:
        return {c[key]: c for c in self.calls[function]}


def kubeconfig_for(context: str, cluster: str | None, home: Path, path: Path | None = None) -> Path:
    """A kubeconfig whose `context` points at `cluster` (default: a cluster of the same name)."""
    path = path or home / ".kube" / "config"
    path.parent.mkdir(parents=True, exist_ok=True)
    cluster = cluster or context
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": context,
        "contexts": [{"name": context, "context": {"cluster": cluster, "user": "dev"}}],
        "clusters": [{"name": cluster, "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "dev", "user": {}}],
    }
    path.write_text(yaml.safe_dump(config))
    return path


def prepare(
    flags: Obj | None = None,
    context: str = "kind-meridian",
    cluster: str | None = None,
    kubeconfig: Path | None = None,
) -> Tilt:
    home = Path(tempfile.mkdtemp(prefix="tilt-home-"))
    if kubeconfig is None:
        kubeconfig = kubeconfig_for(context, cluster, home)
    elif not kubeconfig.is_absolute():
        kubeconfig = home / kubeconfig
    return Tilt(flags or {}, context, kubeconfig, home)


def evaluate(
    flags: Obj | None = None,
    context: str = "kind-meridian",
    cluster: str | None = None,
    kubeconfig: Path | None = None,
) -> Tilt:
    tilt = prepare(flags, context, cluster, kubeconfig)
    run_tiltfile(tilt)
    return tilt


def run_tiltfile(tilt: Tilt) -> None:
    # Tilt's config, os and os.path modules become flat names (see starlark_name):
    # starlark-go's Python bindings pass plain values and functions, not modules.
    source = re.sub(
        r"\b(?:config|os\.path|os)\.\w+\(", lambda m: starlark_name(m[0]), TILTFILE.read_text()
    )
    # The dialect Tilt enables: top-level if/for, sets, recursion.
    starlark_go.configure_starlark(allow_set=True, allow_global_reassign=True, allow_recursion=True)
    interpreter = starlark_go.Starlark()
    interpreter.set(**tilt.functions)
    try:
        interpreter.exec(source, filename=str(TILTFILE))
    except starlark_go.EvalError as error:
        raise TiltfileError(str(error)) from error


@pytest.fixture(scope="session", autouse=True)
def _git_checkout() -> None:
    """tools/image-tags.sh reads git; a Pants sandbox is no checkout, so it becomes one."""
    if Path(".git").exists():
        return
    git = shutil.which("git")
    assert git, "git not found on PATH"
    identity = ["-c", "user.name=Meridian", "-c", "user.email=ci@meridian.invalid"]
    subprocess.run([git, "init", "-q"], check=True)
    subprocess.run([git, "add", "-A"], check=True)
    subprocess.run([git, *identity, "commit", "-q", "-m", "sandbox"], check=True)


def build_metadata() -> dict[str, str]:
    lines = run_command(["tools/image-tags.sh", "--env"]).splitlines()
    return {k: v for k, v in (line.split("=", 1) for line in lines) if k in BUILD_METADATA}


def service_packages() -> list[str]:
    return sorted(p.parent.name for p in Path("services").glob("*/BUILD"))


def catalog() -> list[Obj]:
    """Every service in the catalog (generated from services/*/service.yaml)."""
    services: list[Obj] = json.loads(CATALOG.read_text())["services"]
    return services


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


def is_service(obj: Obj) -> bool:
    labels: dict[str, str] = obj["metadata"].get("labels", {})
    return obj["kind"] == "Deployment" and labels.get("app.kubernetes.io/component") == "service"


@pytest.fixture(scope="module")
def cluster() -> Tilt:
    return evaluate()


@pytest.fixture(scope="module")
def local_mode() -> Tilt:
    # No cluster involved: even a production context is no obstacle, and nothing is
    # allowed on its behalf.
    return evaluate({"local": True}, context=PRODUCTION)


@pytest.fixture(scope="module")
def processes() -> list[Obj]:
    assert PROCESSES.exists(), f"{PROCESSES} is missing"
    return yaml.safe_load(PROCESSES.read_text())["processes"]  # type: ignore[no-any-return]


def service_names(processes: list[Obj]) -> dict[str, int]:
    return {p["name"]: p["port"] for p in processes if "services" in p.get("labels", [])}


def test_tilt_recognised_clusters_need_no_allowance(cluster: Tilt) -> None:
    assert not cluster.calls["allow_k8s_contexts"]
    assert cluster.calls["local"], "the Tiltfile runs local() in cluster mode (build metadata)"


REFUSAL = "Not deploying to kube context '{0}'.*make deploy-local ALLOW_CONTEXT={0} "


@pytest.mark.parametrize(
    ("context", "cluster"),
    [
        # A real single-node cluster named "ceo" (the trial's context).
        ("ceo", "ceo"),
        # A context named like a local cluster whose kubeconfig cluster is not: Tilt
        # goes by the cluster's name.
        ("k3d-meridian", "meridian"),
        (PRODUCTION, PRODUCTION),
    ],
)
def test_a_context_tilt_refuses_is_refused_first_naming_the_way_to_allow_it(
    context: str, cluster: str
) -> None:
    tilt = prepare(context=context, cluster=cluster)
    assert not tilt.context_allowed
    with pytest.raises(TiltfileError, match=REFUSAL.format(re.escape(context))):
        run_tiltfile(tilt)
    assert not tilt.calls["local"], "refused before any local()"
    assert not tilt.yaml


@pytest.mark.parametrize(
    "cluster",
    [
        "kind",
        "kind-meridian",
        "k3d-meridian",
        "minikube",
        "docker-desktop",
        "docker-for-desktop-cluster",
        "microk8s-cluster",
        "rancher-desktop",
        "colima",
        "orbstack",
        "api-crc-testing:6443",
        "krucible-1",
        "ceo",
        "meridian-dev",
        "gke_acme_europe-west1_dev",
        "arn:aws:eks:eu-west-1:1:cluster/dev",
        "orbstack-2",
    ],
)
def test_the_tiltfile_applies_tilts_rule_by_cluster_name(cluster: str) -> None:
    tilt = prepare(context="dev", cluster=cluster)
    if tilt.context_allowed:
        run_tiltfile(tilt)
        assert tilt.yaml
    else:
        with pytest.raises(TiltfileError, match=REFUSAL.format("dev")):
            run_tiltfile(tilt)


def test_a_kubeconfig_kept_by_k3d_is_local_whatever_the_cluster_name() -> None:
    home = Path(tempfile.mkdtemp(prefix="tilt-home-"))
    path = kubeconfig_for("dev", "meridian", home, home / ".config" / "k3d" / "kubeconfig-dev.yaml")
    tilt = Tilt({}, "dev", path, home)
    assert tilt.context_allowed
    run_tiltfile(tilt)
    assert tilt.yaml


def test_a_context_no_kubeconfig_names_is_left_to_tilt() -> None:
    # KUBECONFIG names a file that does not exist: the Tiltfile cannot tell, Tilt refuses.
    with pytest.raises(TiltfileError, match="Refusing to run 'local' because ceo"):
        evaluate(context="ceo", kubeconfig=Path("missing/config"))


@pytest.mark.parametrize(("context", "cluster"), [("k3d-meridian", "meridian"), ("ceo", "ceo")])
def test_an_opted_in_context_is_allowed_before_any_local(context: str, cluster: str) -> None:
    tilt = evaluate({"allow-context": [context]}, context=context, cluster=cluster)
    assert [c["contexts"] for c in tilt.calls["allow_k8s_contexts"]] == [context]
    assert tilt.sequence.index("allow_k8s_contexts") < tilt.sequence.index("local")
    assert tilt.yaml, "the opted-in context gets the stack"


def test_an_opt_in_for_another_context_allows_nothing() -> None:
    with pytest.raises(TiltfileError, match=REFUSAL.format(re.escape(PRODUCTION))):
        evaluate({"allow-context": ["shared-dev"]}, context=PRODUCTION)


def test_make_deploy_local_passes_the_allowed_context_to_tilt() -> None:
    make = shutil.which("make")
    assert make, "make not found on PATH"
    dry = subprocess.run(
        [make, "-n", "deploy-local", "ALLOW_CONTEXT=ceo"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "tilt up -- --allow-context=ceo" in dry
    plain = subprocess.run([make, "-n", "deploy-local"], capture_output=True, text=True, check=True)
    assert "allow-context" not in plain.stdout


def test_cluster_mode_deploys_the_dev_overlay_with_the_build_metadata(cluster: Tilt) -> None:
    rendered = [d for d in yaml.safe_load_all(kubectl_kustomize(DEV_OVERLAY)) if d]
    # HEAD's revision and version, whether or not the tree has uncommitted edits.
    metadata = {k: re.sub(r"[-.]dirty$", "", v) for k, v in build_metadata().items()}
    assert re.fullmatch(r"[0-9a-f]{12}", metadata["MERIDIAN_BUILD_REVISION"])
    services = [d for d in cluster.yaml if is_service(d)]
    assert services, "the dev overlay has no service Deployments"
    for deployment in services:
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            assert {k: env.get(k) for k in BUILD_METADATA} == metadata, deployment["metadata"]
            container["env"] = [e for e in container["env"] if e["name"] not in BUILD_METADATA]
            if not container["env"]:
                del container["env"]
    assert cluster.yaml == rendered, "only the build metadata differs from the dev overlay"


def test_an_uncommitted_edit_changes_no_deployment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first edit of a clean checkout makes its revision "-dirty": the deployments
    Tilt applies must not change with it, or every pod would roll."""
    git = shutil.which("git")
    assert git, "git not found on PATH"
    clone = tmp_path / "clone"
    subprocess.run([git, "clone", "-q", str(Path.cwd()), str(clone)], check=True)
    monkeypatch.chdir(clone)
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")  # no untracked bytecode in the clone
    assert not build_metadata()["MERIDIAN_BUILD_REVISION"].endswith("-dirty")
    clean = evaluate().yaml
    (clone / "uncommitted-edit.txt").write_text("an edit\n")
    assert build_metadata()["MERIDIAN_BUILD_REVISION"].endswith("-dirty")
    assert evaluate().yaml == clean


def test_builds_run_one_at_a_time_and_tilt_prunes_no_docker(cluster: Tilt) -> None:
    assert [c["max_parallel_updates"] for c in cluster.calls["update_settings"]] == [1]
    assert [c["disable"] for c in cluster.calls["docker_prune_settings"]] == [True]


def test_every_service_is_built_with_pants_pushed_once_and_live_updated(
    cluster: Tilt, local_mode: Tilt
) -> None:
    packages = service_packages()
    assert packages, "no services/*/BUILD found: run from the repository root"
    assert sorted(s["directory"] for s in catalog()) == [f"services/{p}" for p in packages]
    images = cluster.by("custom_build", "ref")
    assert set(images) == {s["image"] for s in catalog()}
    ignores = {tuple(r["ignore"]) for r in local_mode.calls["local_resource"] if r.get("ignore")}
    assert len(ignores) == 1, "every local process ignores the same files"
    for service in catalog():
        pkg = service["package"]
        build = images[service["image"]]
        assert build["command"] == f"tools/images/tilt-build.sh services/{pkg}"
        # The script puts the image where the cluster pulls it; Tilt neither looks for
        # it in a Docker daemon nor pushes it a second time.
        assert build["skips_local_docker"] is True
        assert build["env"] == {"MERIDIAN_KUBE_CONTEXT": "kind-meridian"}
        assert f"services/{pkg}" in build["deps"]
        assert Path(f"services/{pkg}").is_dir()
        assert tuple(build["ignore"]) in ignores, "both modes ignore the same files"
        assert {"**/*_test.py", "**/*.md"} <= set(build["ignore"])
        first, *steps = build["live_update"]
        assert first["fn"] == "fall_back_on"
        assert f"services/{pkg}/BUILD" in first["files"]
        assert set(first["files"]) <= set(build["deps"]) | {f"services/{pkg}/BUILD"}
        # The dev image has tar and rm but no shell: only syncs, no run() steps.
        assert [s["fn"] for s in steps] == ["sync"] * len(steps)
        assert not build.get("entrypoint")
        assert {s["local_path"]: s["remote_path"] for s in steps} == {
            f"services/{pkg}": SITE_PACKAGES + pkg,
            "libs/meridian_chassis": SITE_PACKAGES + "meridian_chassis",
        }
        assert {s["local_path"] for s in steps} <= set(build["deps"]), "a sync outside the deps"


def git_ignored_files() -> list[str]:
    listing = run_command(["git", "ls-files", "--others", "--ignored", "--exclude-standard"])
    return listing.splitlines()


# What no image is built from: manifests and their generated parts, the local stack's
# process list, the Tiltfile, CI and the platform checks. A change to one re-applies
# YAML (or reloads the Tiltfile); it must never be a file dependency of an image build.
CONFIG_PATHS = (
    "deployments/k8s",
    "deployments/local",
    "deployments/tests",
    "Tiltfile",
    ".github",
    "tools",
)


def overlaps(a: str, b: str) -> bool:
    a, b = a.rstrip("/"), b.rstrip("/")
    return a in (b, ".", "") or a == b or a.startswith(b + "/") or b.startswith(a + "/")


def test_no_manifest_or_config_path_is_an_image_dependency(cluster: Tilt) -> None:
    builds = cluster.calls["custom_build"]
    assert builds
    for build in builds:
        wrong = [
            (dep, config)
            for dep in [*build["deps"], *build["live_update"][0]["files"]]
            for config in CONFIG_PATHS
            if overlaps(dep, config)
        ]
        assert not wrong, f"{build['ref']}: config paths among its image deps: {wrong}"
    deps = {dep.rstrip("/") for build in builds for dep in build["deps"]}
    config_files = [
        str(path)
        for path in [*Path("deployments/k8s").rglob("*"), PROCESSES, TILTFILE]
        if path.is_file()
    ]
    assert len(config_files) > 10, "the manifests are missing from the sandbox"
    inside = [f for f in config_files if any(overlaps(f, dep) for dep in deps)]
    assert not inside, f"manifest or config files inside image deps: {inside}"
    # Config edits reach the cluster by a Tiltfile reload that re-applies the YAML.
    assert "deployments/k8s" in [c["file_path"] for c in cluster.calls["watch_file"]]


def test_each_image_depends_only_on_what_goes_into_it(cluster: Tilt) -> None:
    """Its own service, the chassis, the API, the lockfile, the image definitions and
    the BUILD macros: no other service's edit rebuilds it."""
    for service in catalog():
        pkg = service["package"]
        build = cluster.by("custom_build", "ref")[service["image"]]
        others = [f"services/{p}" for p in service_packages() if p != pkg]
        assert not [d for d in build["deps"] for o in others if overlaps(d, o)], pkg
        assert set(build["deps"]) == {
            f"services/{pkg}",
            "libs/meridian_chassis",
            "api/proto",
            "3rdparty/python",
            "deployments/docker",
            "build-support/macros.py",
        }


def test_no_build_output_is_inside_a_watched_dep(cluster: Tilt) -> None:
    # Tilt does not read .gitignore: anything a build writes inside a dep is a change
    # that triggers the next build. Git-ignored files are what builds write.
    deps = {d for c in cluster.calls["custom_build"] for d in c["deps"]}
    ignores = {i for c in cluster.calls["custom_build"] for i in c["ignore"]}
    nested_gitignores = [
        path for dep in deps if Path(dep).is_dir() for path in Path(dep).rglob(".gitignore")
    ]
    assert not nested_gitignores, f"build outputs expected inside watched deps: {nested_gitignores}"
    tolerated = re.compile(r"(^|/)(__pycache__/|[^/]*\.pyc$)")
    assert any("__pycache__" in i for i in ignores)
    inside = [
        path
        for path in git_ignored_files()
        if any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)
        and not tolerated.search(path)
    ]
    assert not inside, f"git-ignored files inside watched deps: {inside}"


def test_every_config_object_is_grouped_with_a_resource(cluster: Tilt) -> None:
    claimed: dict[str, str] = {}
    for resource in cluster.calls["k8s_resource"]:
        for selector in resource.get("objects") or []:
            assert selector not in claimed, f"{selector} claimed twice"
            claimed[selector] = resource.get("workload") or resource["new_name"]
    config = {
        f"{d['metadata']['name']}:{d['kind'].lower()}": d
        for d in cluster.yaml
        if d["kind"] not in AUTO_GROUPED_KINDS
    }
    assert set(claimed) == set(config), "objects left uncategorized, or selectors matching nothing"
    workloads = {d["metadata"]["name"] for d in cluster.yaml if d["kind"] in WORKLOAD_KINDS}
    for selector, owner in claimed.items():
        labels = config[selector]["metadata"]["labels"]
        if owner in workloads:
            assert labels["app.kubernetes.io/name"] == owner, selector
        else:
            assert labels["app.kubernetes.io/component"] == "config", selector
    shared = [c for c in cluster.calls["k8s_resource"] if c.get("new_name")]
    assert [c["new_name"] for c in shared] == ["config"]
    assert any(s.endswith(":namespace") for s in shared[0]["objects"])
    for resource in cluster.calls["k8s_resource"]:
        if resource.get("workload"):
            assert "config" in resource["resource_deps"], "the namespace comes first"


def test_every_workload_is_a_labelled_resource(cluster: Tilt, processes: list[Obj]) -> None:
    workloads = {d["metadata"]["name"] for d in cluster.yaml if d["kind"] in WORKLOAD_KINDS}
    resources = {c["workload"]: c for c in cluster.calls["k8s_resource"] if c.get("workload")}
    assert set(resources) == workloads
    services = set(service_names(processes))
    for name, resource in resources.items():
        deps = set(resource.get("resource_deps") or [])
        assert resource["labels"] == (["services"] if name in services else ["backing"]), name
        assert deps <= (workloads | {"config"}) - {name}, f"{name}: unknown resource_deps"
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
    services = {s["name"]: {s["port"]: s["container_port"]} for s in catalog()}
    assert actual == services | BACKING_PORTS


def test_manual_test_resource(cluster: Tilt) -> None:
    resources = cluster.by("local_resource", "name")
    assert set(resources) == {"test"}, "cluster mode runs no other local process"
    test = resources["test"]
    assert test["cmd"] == TEST_CMD
    assert test.get("trigger_mode") == MANUAL
    assert test.get("auto_init") is False
    assert test["labels"] == ["tests"]


def test_every_service_directory_is_a_local_process(processes: list[Obj]) -> None:
    assert sorted(s["directory"] for s in catalog()) == [
        f"services/{p}" for p in service_packages()
    ]
    assert {s["name"] for s in catalog()} == set(service_names(processes))


def test_local_mode_checks_nothing_of_the_cluster(local_mode: Tilt) -> None:
    for cluster_call in ("k8s_yaml", "custom_build", "k8s_resource", "allow_k8s_contexts", "local"):
        assert not local_mode.calls[cluster_call], f"--local must not call {cluster_call}"


def test_local_mode_serves_every_process(local_mode: Tilt, processes: list[Obj]) -> None:
    resources = local_mode.by("local_resource", "name")
    assert set(resources) == {p["name"] for p in processes} | {"test"}
    ports = [p["port"] for p in processes]
    assert len(ports) == len(set(ports)), f"duplicate local ports {ports}"
    backing = {p["name"] for p in processes if "services" not in p.get("labels", [])}
    for p in processes:
        resource = resources[p["name"]]
        assert resource["serve_cmd"][-len(p["cmd"]) :] == p["cmd"]
        assert resource["cmd"] == p["build"]
        assert resource["serve_env"] == p.get("env", {})
        assert resource["labels"] == p.get("labels", [])
        assert resource["deps"] == p.get("deps", [])
        assert {"**/*_test.py", "**/conftest.py"} <= set(resource["ignore"])
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


def test_local_mode_builds_what_it_runs_from_a_fresh_clone(processes: list[Obj]) -> None:
    for p in processes:
        programs = [PEX_PATH.match(arg) for arg in p["cmd"]]
        built = [m for m in programs if m]
        assert built, f"{p['name']}: runs no pex"
        for match in built:
            target = f"{match['dir'].replace('.', '/')}:{match['name']}"
            build = p.get("build", [])
            assert build[:1] == ["./pants"], p["name"]
            assert "package" in build, p["name"]
            assert target in build, p["name"]
        # What a service imports from outside its PEX: the working tree and the API's
        # generated code, which its build exports.
        for path in p.get("env", {}).get("PEX_EXTRA_SYS_PATH", "").split(":"):
            if path.startswith("dist/codegen"):
                assert "export-codegen" in p["build"], p["name"]
            elif path:
                assert Path(path).is_dir(), f"{p['name']}: {path} is not a directory"


def test_every_local_process_and_make_run_share_one_pex(processes: list[Obj]) -> None:
    # One virtualenv for the whole stack, made on its first start, not one per process.
    pexes = {arg for p in processes for arg in p["cmd"] if PEX_PATH.match(arg)}
    assert len(pexes) == 1, pexes
    (pex,) = pexes
    for p in processes:
        after = p["cmd"][p["cmd"].index(pex) + 1 :]
        assert after[:1] == ["-m"], f"{p['name']}: names no module to run"
        assert len(after) > 1, f"{p['name']}: names no module to run"
    makefile = Path("Makefile").read_text()
    assert f"\nSTACK_PEX := {pex}\n" in makefile
    assert "$(STACK_PEX) -m meridian_devstack.main" in makefile


def test_local_services_run_their_code_from_the_tree_and_reload_it(processes: list[Obj]) -> None:
    for p in processes:
        if "services" not in p.get("labels", []):
            continue
        assert p["env"]["MERIDIAN_RELOAD"] == "1", p["name"]
        assert p["env"]["PEX_EXTRA_SYS_PATH"].split(":")[:2] == ["services", "libs"], p["name"]
        # A .py edit is taken in place: only what the process cannot reload restarts it.
        reloaded = ("services/", "libs/")
        for dep in p["deps"]:
            assert not (dep.startswith(reloaded) and (dep.endswith(".py") or Path(dep).is_dir()))
        assert any(dep.endswith("/BUILD") for dep in p["deps"]), p["name"]


def test_local_services_report_the_build_metadata(local_mode: Tilt, processes: list[Obj]) -> None:
    resources = local_mode.by("local_resource", "name")
    metadata = build_metadata()
    for name in service_names(processes):
        serve = resources[name]["serve_cmd"]
        wrapper = serve[: len(serve) - len(next(p["cmd"] for p in processes if p["name"] == name))]
        assert wrapper, f"{name}: served without the build metadata"
        printed = run_command([*wrapper, "printenv", *BUILD_METADATA]).split()
        assert printed == [metadata[k] for k in BUILD_METADATA]


def test_local_ports_are_the_cluster_port_forwards(processes: list[Obj], cluster: Tilt) -> None:
    forwarded = {port for c in cluster.calls["k8s_resource"] for port in forwards(c)}
    assert {p["port"] for p in processes} <= forwarded
