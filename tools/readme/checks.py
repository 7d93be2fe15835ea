"""How each README command is tried in a fresh clone, in this order, or why it is not.

Every command README.md gives has exactly one entry (tools/readme/checks_test.py fails
on a new command without one, or an entry the README no longer gives). A command that
needs no network, cluster or container engine runs as written; one that does runs in
a fast form that still proves it is real (`make -n` for make tasks, a taken port for
`make run`), or is skipped with the reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

CATALOG = Path(__file__).resolve().parents[2] / "services" / "catalog.json"
# A stack port the check holds while `make run` is tried: the run must fail at once.
# The first service's host port, from the catalog.
HELD_PORT: int = json.loads(CATALOG.read_text())["services"][0]["port"]
# The port the README's single-service command serves on.
SINGLE_SERVICE_PORT = 9081


@dataclass(frozen=True)
class Run:
    """Run in the clone (as written, or `instead`); pass on `status` with each `expect`
    pattern in the output and no `reject` pattern."""

    instead: str | None = None
    status: int = 0
    expect: tuple[str, ...] = ()
    reject: tuple[str, ...] = ()
    timeout: float = 120.0
    lists_tasks: bool = False  # the output names every documented make task
    hold_port: int | None = None  # a listener on this port while it runs
    serves: str | None = None  # runs until this URL answers 200, then is stopped
    without_programs: tuple[str, ...] = ()  # PATH without these
    leaves_no: tuple[str, ...] = ()  # paths that must not exist afterwards
    prepare: tuple[str, ...] = ()  # directories created first


@dataclass(frozen=True)
class Skip:
    reason: str


Check = Run | Skip


def dry_run(command: str) -> Run:
    """`make -n`: the tasks exist and their recipes expand; nothing is run."""
    words = command.split()
    index = words.index("make")
    return Run(instead=" ".join([*words[: index + 1], "-n", *words[index + 1 :]]))


NETWORK = "needs the package index or Debian's archive (make test is hermetic)"
CLUSTER = "needs a Kubernetes cluster and the tilt binary"
MACHINE_WIDE = "changes the machine beyond the clone (shared by every checkout)"

CHECKS: dict[str, Check] = {
    # No Pants needed.
    "make": Run(lists_tasks=True, reject=("\x1b",)),
    "make help": Run(lists_tasks=True, reject=("\x1b",)),
    "make run": Run(
        status=2,
        hold_port=HELD_PORT,
        expect=(rf"port {HELD_PORT} is already in use by pid \d+",),
        reject=("tools/prerequisites.sh",),  # what the build's first step echoes
        timeout=20,
    ),
    "ACCESS_LOG_PROBES=1 make run": Run(
        status=2, hold_port=HELD_PORT, expect=(rf"port {HELD_PORT} is already in use",), timeout=20
    ),
    "tools/prerequisites.sh --check": Run(expect=(r"ok +make",)),
    "tools/image-tags.sh": Run(expect=(r"^[0-9a-f]{12}$",)),
    # Exit status 1 and "none: ..." when no engine runs (as in CI before make docker).
    "tools/images/engine.sh status": Run(
        instead="tools/images/engine.sh status || [ $? = 1 ]",
        expect=(r"^(docker|podman|none):",),
        timeout=60,
    ),
    "kubectl kustomize deployments/k8s/overlays/dev": Run(expect=("kind: Deployment",)),
    "make deploy-local ALLOW_CONTEXT=ceo": Run(
        instead="make -n deploy-local ALLOW_CONTEXT=ceo", expect=("tilt up -- --allow-context=ceo",)
    ),
    "make deploy-local": Run(
        status=2, without_programs=("tilt",), expect=("tilt is not installed",), timeout=20
    ),
    # make tasks that build, test, scan or measure everything: their recipes expand.
    **{
        command: dry_run(command)
        for command in (
            "make test",
            "make test-readme",
            "make docker",
            "make test-images",
            "make bench-images",
            "MERIDIAN_ENGINE=podman make docker test-images",
            "make bench-cold-start",
            "make audit",
            "make tool-locks",
            "make lock",
            "make service",
            "make service NAME=x",
            "make service NAME=payment-order NEEDS=database,kafka",
            "make services",
            "make bootstrap",
            "make lint",
            "make fmt",
            "make check",
            "make build",
            "make validate",
            "make bench-scale",
            "make bench-pr",
            "make bench-health",
            "make bench-dev-loop",
            "make bench-dev-loop BENCH_ARGS=--local",
            "make proto",
            "make ci-cache-demo",
            "make ci-rehearsal",
            "make secrets",
            "make hooks",
            "make test-changed BASE=HEAD~1",
        )
    },
    # Pants in the clone (the first one bootstraps it).
    "make test-changed": Run(expect=("nothing changed since", "nothing to test"), timeout=300),
    "./pants": Run(instead="./pants --version", expect=(r"^2\.17\.1$",)),
    "./pants dependents --transitive libs/meridian_chassis:": Run(
        expect=("^services/current_account", "^services/position_keeping"), timeout=300
    ),
    "./pants test libs/meridian_chassis/edge_test.py -- -s": Run(
        expect=(r"edge_test.py.* succeeded",), timeout=900
    ),
    "./pants test services/current_account::": Run(
        expect=(r"services/current_account.* succeeded",), timeout=900
    ),
    (
        f"PORT={SINGLE_SERVICE_PORT} "
        "DATABASE_URL=postgresql://meridian@127.0.0.1:26257/current_account "
        "REDIS_URL=redis://127.0.0.1:6379/0 KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 "
        "./pants run services/current_account:bin"
    ): Run(serves=f"http://127.0.0.1:{SINGLE_SERVICE_PORT}/health/live", timeout=600),
    "make clean": Run(
        prepare=("dist/x", ".local/x"),
        expect=("stopped pantsd",),
        leaves_no=("dist", ".local", ".pids", ".pants.d"),
    ),
    "make stop-pantsd": Run(expect=("no pantsd runs for this checkout",)),
    # Not run here.
    "./pants --changed-since=BASE --changed-dependents=transitive test": Skip(
        "what make test-changed runs (BASE is a placeholder)"
    ),
    "./pants test ::": Skip("what make test runs"),
    "./pants package services/<package>:image": Skip("a placeholder; make docker runs it"),
    "tools/prerequisites.sh": Skip("installs system packages with apt: " + NETWORK),
    "tools/install-dev-tools.sh": Skip("downloads tilt, kubectl and kind"),
    "pyenv install 3.9 3.11": Skip("builds Pythons from downloaded sources"),
    "pyenv install 3.9": Skip("builds a Python from downloaded sources"),
    "brew install python@3.9": Skip("macOS only"),
    "apt-get update --error-on=any": Skip(NETWORK),
    "apt-get download": Skip("how the audit fetches a package's changelog: " + NETWORK),
    "3rdparty/lock.sh": Skip("re-resolves the tool locks: " + NETWORK),
    "python3.11 deployments/docker/base/rootfs.py lock": Skip(NETWORK),
    "tilt up": Skip(CLUSTER),
    "tilt up -- --local": Skip("needs the tilt binary"),
    "tilt ci -- --allow-context=ceo": Skip(CLUSTER),
    "tools/images/engine.sh": Skip("starts a container engine, installing docker.io: " + NETWORK),
    "tools/images/engine.sh status|stop": Skip("two commands, each tried or skipped on its own"),
    "tools/images/engine.sh stop": Skip("stops the engine: " + MACHINE_WIDE),
    "tools/images/tilt-build.sh": Skip("Tilt runs it with the image reference to build"),
    ".github/apply-settings.sh OWNER/REPO": Skip("changes a GitHub repository's settings"),
    "rm -rf ~/.cache/meridian/pants .pants.rc": Skip("removes the Pants install: " + MACHINE_WIDE),
    "pkill -f pantsd": Skip("stops every checkout's pantsd: " + MACHINE_WIDE),
}
