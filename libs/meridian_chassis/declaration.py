"""A service's declaration: services/<package>/service.yaml, the one place that says
what the service is called, which host port it gets locally and what it needs.

The chassis reads it from the service's package (it ships inside the PEX); the platform
tooling (meridian_catalog) reads the same file to derive services/catalog.json, the
local stack, the Kubernetes manifests and Tilt's resources, so nothing else repeats it.
This module holds the one rule relating a service's name and package, which the
declaration's `name` must follow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

DECLARATION_FILE = "service.yaml"
# The port every service listens on inside its container; a service's declared `port`
# is its host port in `make run` and Tilt.
CONTAINER_PORT = 8080


BACKING_SERVICES_FILE = "backing_services.yaml"


@dataclass(frozen=True)
class BackingService:
    """A kind of backing service a service may need (backing_services.yaml says what
    each field means)."""

    need: str
    server: str
    program: str
    port: int
    setting: str
    address: str
    forwarded_port: int
    remote_port: int

    @property
    def prefix(self) -> str:
        """What every setting of this backing service starts with (DATABASE_)."""
        return self.setting.split("_")[0] + "_"


def load_backing_services() -> tuple[BackingService, ...]:
    text = resources.files("meridian_chassis").joinpath(BACKING_SERVICES_FILE).read_text()
    return tuple(
        BackingService(
            need=need,
            server=kind["server"],
            program=kind["program"],
            port=kind["port"],
            setting=kind["setting"],
            address=kind["address"],
            forwarded_port=kind.get("forwarded_port", kind["port"]),
            remote_port=kind.get("remote_port", kind["port"]),
        )
        for need, kind in yaml.safe_load(text).items()
    )


BACKING_SERVICES = load_backing_services()
DEPENDENCIES = tuple(backing.need for backing in BACKING_SERVICES)
# An RFC 1123 DNS label: Kubernetes object names, Service hostnames.
DNS_LABEL = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
EXPECTED_FORM = (
    "a mapping like\n"
    "    name: ledger-audit      # the package's name in dashes (services/ledger_audit/)\n"
    "    port: 8084              # host port in `make run` and Tilt, 1024-65535\n"
    "    needs: [database, redis, kafka]   # any of these, or []\n"
    "    optional: [redis]       # needs it serves without (degraded); default []"
)


class DeclarationError(Exception):
    """A service declaration is missing or malformed; the message names file and field."""


@dataclass(frozen=True)
class Declaration:
    name: str
    package: str
    port: int
    needs: frozenset[str]
    # Needs the service keeps serving without: readiness does not fail on them.
    optional: frozenset[str] = frozenset()


def service_name(package: str) -> str:
    """A service is named after its package, in dashes: current_account -> current-account."""
    return package.replace("_", "-")


def package_name(service: str) -> str:
    """The package of a service name: current-account -> current_account."""
    return service.replace("-", "_")


def parse_declaration(package: str, text: str, where: str) -> Declaration:
    """Validate one declaration's text; `where` names the file in errors."""
    try:
        document: Any = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise DeclarationError(f"{where}: not valid YAML ({error})") from None
    if not isinstance(document, dict):
        raise DeclarationError(f"{where}: expected {EXPECTED_FORM}")
    unknown = sorted(set(document) - {"name", "port", "needs", "optional"})
    if unknown:
        raise DeclarationError(
            f"{where}: unknown field(s) {', '.join(unknown)}; expected {EXPECTED_FORM}"
        )
    port = document.get("port")
    if not isinstance(port, int) or isinstance(port, bool) or not 1024 <= port <= 65535:
        raise DeclarationError(f"{where}: `port` must be a number from 1024 to 65535, got {port!r}")
    needs = document.get("needs", [])
    if not isinstance(needs, list) or not all(need in DEPENDENCIES for need in needs):
        raise DeclarationError(
            f"{where}: `needs` must be a list of {', '.join(DEPENDENCIES)}, got {needs!r}"
        )
    optional = document.get("optional", [])
    if not isinstance(optional, list) or not all(need in needs for need in optional):
        raise DeclarationError(
            f"{where}: `optional` must be a list of needs from `needs` ({needs!r}) that the "
            f"service keeps serving without, got {optional!r}"
        )
    name = service_name(package)
    if not DNS_LABEL.match(name):
        raise DeclarationError(
            f"{where}: the package name {package!r} gives the service name {name!r}, which is "
            "not a DNS label (lowercase letters, digits and underscores, starting with a "
            "letter, at most 63 characters)"
        )
    if document.get("name") != name:
        raise DeclarationError(
            f"{where}: `name` must be {name!r}, the package {package!r} in dashes, got "
            f"{document.get('name')!r}"
        )
    return Declaration(
        name=name,
        package=package,
        port=port,
        needs=frozenset(needs),
        optional=frozenset(optional),
    )


def load_packaged_declaration(package: str) -> Declaration:
    """The declaration that ships inside `package` (services/<package>/service.yaml)."""
    try:
        text = resources.files(package).joinpath(DECLARATION_FILE).read_text()
    except FileNotFoundError:
        raise DeclarationError(
            f"{package}/{DECLARATION_FILE} is missing; every service declares itself there "
            f"({EXPECTED_FORM})"
        ) from None
    return parse_declaration(package, text, f"{package}/{DECLARATION_FILE}")
