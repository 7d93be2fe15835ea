from pathlib import Path

import pytest

from meridian_catalog.catalog import load_catalog
from meridian_chassis.config import DEPENDENCY_SETTINGS
from meridian_devstack.stack import StackFileError, load_stack

STACK_FILE = Path("deployments/local/processes.yaml")


def test_the_local_stack_file_is_valid() -> None:
    processes = load_stack(STACK_FILE)
    names = [process.name for process in processes]
    assert names[:3] == ["cockroachdb", "redis", "kafka"]
    services = [process for process in processes if "services" in process.labels]
    needs = {declaration.name: declaration.needs for declaration in load_catalog(Path.cwd())}
    assert sorted(process.name for process in services) == sorted(needs)
    for service in services:
        assert service.ready_path == "/health/ready"
        assert service.env["PORT"] == str(service.port)
        configured = {
            need for need, setting in DEPENDENCY_SETTINGS.items() if setting in service.env
        }
        assert configured == needs[service.name], f"{service.name}: {sorted(service.env)}"
        if "redis" in needs[service.name]:
            assert service.env["REDIS_URL"] == "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("nothing: here", "expected a top-level `processes:` list"),
        ("processes: [{name: a, port: 1}]", "processes[0] (a): missing `cmd`"),
        ("processes: [{name: a, cmd: [x], port: 99999}]", "`port` must be from 1 to 65535"),
        (
            "processes: [{name: a, cmd: [x], port: 1, env: {PORT: 1}}]",
            "`env` values must be strings",
        ),
        ("processes: [{name: a, cmd: [x], port: 1, ready_path: ready}]", "must start with '/'"),
        (
            "processes: [{name: a, cmd: [x], port: 1}, {name: b, cmd: [y], port: 1}]",
            "two processes share the port 1",
        ),
    ],
)
def test_malformed_stack_files_are_rejected_with_the_field_named(
    tmp_path: Path, document: str, message: str
) -> None:
    path = tmp_path / "processes.yaml"
    path.write_text(document)
    with pytest.raises(
        StackFileError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")
    ):
        load_stack(path)
