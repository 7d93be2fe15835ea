"""`make service` on every path: a service of each combination of needs (none,
database, redis, kafka and every mix) passes the platform's own checks.

The services are made by the catalog tool, as `make service` makes them, in a copy of
the repository whose services/ holds only them (so no name a user might choose can
clash), and the platform checks run there as they run on the repository: the
Kubernetes manifests of every overlay, the local stack and the derived files; and each
new service keeps the service contract (its own main_test.py) against real PostgreSQL,
Redis and Kafka.
"""

from __future__ import annotations

import importlib
import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from meridian_catalog.scaffold import create_service
from meridian_chassis.declaration import DEPENDENCIES, Declaration
from meridian_testing.contract import (
    check_ready_with_dependencies,
    check_refuses_to_start_without_dependencies,
)
from meridian_testing.servers import backing_services

# What the copy needs besides services/: what the checks below read.
COPIED = ("deployments", "libs", "tools", "Tiltfile", "pyproject.toml")
# The platform checks that follow each service's declaration.
PLATFORM_CHECKS = (
    "deployments/tests/test_k8s_manifests.py",
    "libs/meridian_devstack/stack_test.py",
    "libs/meridian_catalog/derived_test.py",
)
FIRST_PORT = 9300


def combinations() -> list[tuple[str, ...]]:
    return [
        needs
        for size in range(len(DEPENDENCIES) + 1)
        for needs in itertools.combinations(DEPENDENCIES, size)
    ]


def service_name(needs: tuple[str, ...]) -> str:
    return "needs-" + ("-".join(needs) if needs else "nothing")


def repository_copy(source: Path, target: Path) -> Path:
    """The repository's platform files with an empty services/."""
    target.mkdir()
    for name in COPIED:
        path = source / name
        if path.is_dir():
            shutil.copytree(path, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif path.exists():
            shutil.copy2(path, target / name)
    (target / "services").mkdir()
    return target


def run_pytest(root: Path, paths: list[str]) -> subprocess.CompletedProcess[str]:
    # The copy's own libs/, services/ and deployments/ first; third-party packages and
    # the tools from this interpreter.
    own = [str(root), str(root / "libs")]
    inherited = [os.path.abspath(path) for path in sys.path if path]
    env = {key: value for key, value in os.environ.items() if not key.startswith("PEX")}
    env["PYTHONPATH"] = os.pathsep.join([*own, *inherited])
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *paths],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def new_services(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Declaration]]:
    """A repository copy with one new service for each combination of needs."""
    root = repository_copy(Path.cwd(), tmp_path_factory.mktemp("new-services") / "repository")
    made = [
        create_service(root, service_name(needs), port, needs, lambda _: None)
        for port, needs in enumerate(combinations(), start=FIRST_PORT)
    ]
    assert {d.needs for d in made} == {frozenset(needs) for needs in combinations()}
    assert len(made) == 2 ** len(DEPENDENCIES)
    return root, made


def test_the_platform_checks_pass_with_a_service_of_every_combination_of_needs(
    new_services: tuple[Path, list[Declaration]],
) -> None:
    root, _ = new_services
    result = run_pytest(root, list(PLATFORM_CHECKS))
    assert result.returncode == 0, f"{result.stdout[-20000:]}\n{result.stderr[-5000:]}"
    summary = result.stdout.strip().splitlines()[-1]
    assert " passed" in summary, summary
    assert "failed" not in summary, summary


def test_a_service_of_every_combination_of_needs_keeps_the_service_contract(
    new_services: tuple[Path, list[Declaration]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What each new service's own test (main_test.py) checks, against one set of
    servers for all of them."""
    root, made = new_services
    # The services' processes import their packages from the copy.
    monkeypatch.syspath_prepend(str(root / "services"))
    with backing_services() as servers:
        for declaration in made:
            module = f"{declaration.package}.main"
            spec = importlib.import_module(module).SERVICE
            assert spec.dependencies == declaration.needs, declaration.name
            check_refuses_to_start_without_dependencies(spec, module)
            check_ready_with_dependencies(spec, module, servers)
