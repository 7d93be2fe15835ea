"""`make service` on a copy of the repository's service and deployment files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from meridian_catalog.catalog import load_catalog
from meridian_catalog.derived import CATALOG_JSON, LOCAL_DATABASES, LOCAL_STACK, stale_files
from meridian_catalog.main import main
from meridian_catalog.scaffold import ScaffoldError, create_service
from meridian_chassis.declaration import CONTAINER_PORT, DeclarationError


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    for directory in ("services", "deployments"):
        shutil.copytree(Path.cwd() / directory, tmp_path / directory)
    return tmp_path


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def quiet(_: str) -> None:
    pass


def test_new_service_gets_every_derived_entry(repo: Path) -> None:
    declaration = create_service(repo, "scaffolded-service", None, ["database", "redis"], quiet)

    assert declaration.package == "scaffolded_service"
    assert declaration.port == max(d.port for d in load_catalog(repo) if d is not declaration)
    assert (repo / "services/scaffolded_service/BUILD").read_text() == "meridian_service()\n"
    assert not stale_files(repo, load_catalog(repo))
    stack = yaml.safe_load((repo / LOCAL_STACK).read_text())["processes"]
    audit = next(process for process in stack if process["name"] == "scaffolded-service")
    assert audit["port"] == declaration.port
    assert audit["env"]["DATABASE_URL"].endswith("/scaffolded_service")
    assert "KAFKA_BOOTSTRAP_SERVERS" not in audit["env"]
    database = next(process for process in stack if process["name"] == "cockroachdb")
    assert "scaffolded_service" in database["cmd"]
    assert "scaffolded-service-db" in (repo / LOCAL_DATABASES).read_text()
    assert (repo / "deployments/k8s/base/services/scaffolded-service/kustomization.yaml").is_file()
    entry = next(
        service
        for service in json.loads((repo / CATALOG_JSON).read_text())["services"]
        if service["name"] == "scaffolded-service"
    )
    assert entry == {
        "name": "scaffolded-service",
        "package": "scaffolded_service",
        "directory": "services/scaffolded_service",
        "port": declaration.port,
        "container_port": CONTAINER_PORT,
        "needs": ["database", "redis"],
        "optional": [],
        "image": "meridian/scaffolded-service",
        "database": "scaffolded_service",
    }


def test_new_service_without_database_has_no_database(repo: Path) -> None:
    create_service(repo, "scaffolded-rates", 9100, ["kafka"], quiet)
    stack = yaml.safe_load((repo / LOCAL_STACK).read_text())["processes"]
    database = next(process for process in stack if process["name"] == "cockroachdb")
    assert "scaffolded_rates" not in database["cmd"]
    assert "scaffolded-rates-db" not in (repo / LOCAL_DATABASES).read_text()
    kustomization = repo / "deployments/k8s/base/services/scaffolded-rates/kustomization.yaml"
    assert "service-template/without-database" in kustomization.read_text()


@pytest.mark.parametrize(
    ("name", "port", "needs", "message"),
    [
        ("current-account", None, [], "already exists"),
        ("Ledger", None, [], "not a valid service name"),
        ("scaffolded_service", None, [], "not a valid service name"),
        ("ledger--audit", None, [], "not a valid service name"),
        ("9lives", None, [], "not a valid service name"),
        ("x" * 64, None, [], "not a valid service name"),
        ("scaffolded-service", 8081, [], "PORT=8081 is taken"),
        ("scaffolded-service", 80, [], "from 1024 to 65535"),
        ("scaffolded-service", None, ["postgres"], "choose from database, redis, kafka"),
    ],
)
def test_bad_requests_change_nothing(
    repo: Path, name: str, port: int | None, needs: list[str], message: str
) -> None:
    before = snapshot(repo)
    with pytest.raises(ScaffoldError, match=message):
        create_service(repo, name, port, needs, quiet)
    assert snapshot(repo) == before


def test_removing_a_service_is_deleting_its_directory_then_generating(repo: Path) -> None:
    shutil.rmtree(repo / "services/position_keeping")
    assert main(["--root", str(repo), "check"]) == 1
    assert main(["--root", str(repo), "generate"]) == 0
    assert main(["--root", str(repo), "check"]) == 0
    assert not (repo / "deployments/k8s/base/services/position-keeping").exists()
    assert "position-keeping" not in (repo / LOCAL_STACK).read_text()


def test_stale_file_fails_check_with_the_command(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    declaration = repo / "services/current_account/service.yaml"
    declaration.write_text(declaration.read_text().replace("8081", "65000"))
    assert main(["--root", str(repo), "check"]) == 1
    err = capsys.readouterr().err
    assert LOCAL_STACK in err
    assert "make services" in err


def test_clashing_ports_are_refused(repo: Path) -> None:
    declaration = repo / "services/current_account/service.yaml"
    declaration.write_text(declaration.read_text().replace("8081", "8082"))
    with pytest.raises(DeclarationError, match="both declare port 8082"):
        load_catalog(repo)


def test_service_without_declaration_is_named(repo: Path) -> None:
    (repo / "services/position_keeping/service.yaml").unlink()
    with pytest.raises(DeclarationError, match="services/position_keeping/service.yaml is missing"):
        load_catalog(repo)


def test_generated_ports_skip_reserved_ones(repo: Path) -> None:
    for directory in (repo / "services").glob("*/"):
        if directory.name != "current_account":
            shutil.rmtree(directory)
    declaration = repo / "services/current_account/service.yaml"
    declaration.write_text(declaration.read_text().replace("8081", "8089"))
    assert main(["--root", str(repo), "generate"]) == 0
    assert create_service(repo, "scaffolded-service", None, [], quiet).port == 8091


def test_optional_needs_are_declared_and_read_back(repo: Path) -> None:
    assert main(["--root", str(repo), "new", "ledger-cache", "--needs", "database,redis",
                 "--optional", "redis"]) == 0  # fmt: skip
    declared = next(d for d in load_catalog(repo) if d.name == "ledger-cache")
    assert declared.optional == frozenset({"redis"})
    entry = next(
        service
        for service in json.loads((repo / CATALOG_JSON).read_text())["services"]
        if service["name"] == "ledger-cache"
    )
    assert entry["optional"] == ["redis"]


def test_an_optional_need_that_is_not_needed_changes_nothing(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(repo)
    assert main(["--root", str(repo), "new", "ledger-cache", "--needs", "database",
                 "--optional", "redis"]) == 2  # fmt: skip
    assert "OPTIONAL names redis, which NEEDS does not" in capsys.readouterr().err
    assert snapshot(repo) == before
