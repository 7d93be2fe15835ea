"""The behaviour every Meridian service must show, checked against a real process."""

from __future__ import annotations

from meridian_chassis.config import DEPENDENCY_SETTINGS
from meridian_chassis.launch import CONFIG_ERROR_EXIT_CODE
from meridian_chassis.spec import ServiceSpec
from meridian_testing.process import python_command, running_service, start_process
from meridian_testing.servers import BackingServices, backing_services


def service_command(module: str) -> list[str]:
    return python_command(f"from {module} import main; main()")


def check_ready_with_dependencies(
    spec: ServiceSpec, module: str, services: BackingServices
) -> None:
    # Every backing service configured, as Kubernetes does: the service checks only
    # those it declares.
    env = {"MERIDIAN_BUILD_REVISION": "abc1234", **services.environment()}
    with running_service(service_command(module), env) as service:
        ready = service.get("/health/ready")
        assert ready.status == 200, ready.text
        assert set(ready.body["checks"]) == spec.dependencies
        version = service.get("/version").body
        assert version["name"] == spec.name
        assert version["revision"] == "abc1234"


def check_refuses_to_start_without_dependencies(spec: ServiceSpec, module: str) -> None:
    if not spec.dependencies:
        return  # nothing it could lack
    process = start_process(
        service_command(module), {"PORT": "0", "MERIDIAN_BUILD_REVISION": "abc1234"}
    )
    _, err = process.communicate(timeout=30)
    assert process.returncode == CONFIG_ERROR_EXIT_CODE
    for dependency in spec.dependencies:
        assert f"{DEPENDENCY_SETTINGS[dependency]} is required" in err, err


def check_service_contract(spec: ServiceSpec, module: str) -> None:
    """Ready against real dependencies; refuses to start when they are not configured."""
    check_refuses_to_start_without_dependencies(spec, module)
    with backing_services() as services:
        check_ready_with_dependencies(spec, module, services)
