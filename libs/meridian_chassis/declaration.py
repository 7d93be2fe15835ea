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


@dataclass(frozen=True)
class BackingService:
    """A kind of backing service a service may need: one entry here, plus its chassis
    client (meridian_chassis.clients.<need>, and its settings in meridian_chassis.config)
    and its manifest for local clusters (deployments/k8s/local/<server>.yaml). The
    catalog derives the rest: the local stack's server process and the settings that
    point services at it, Tilt's resource and port-forward, the BUILD macros' client
    dependency, the reserved host port."""

    need: str  # what service.yaml's `needs` says
    server: str  # its process in `make run`, its workload and Tilt resource in a cluster
    program: str  # what runs it locally: libs/meridian_devstack/backing.py PROGRAM
    port: int  # its host port locally; its Kubernetes Service's port
    setting: str  # the setting that tells a service where it is
    prefix: str  # every setting of this backing service starts with it
    address: str  # the setting's value, from {host}, {port} and the service's {database}
    # The container port Tilt forwards the host port to, where it differs from `port`.
    forwarded_port: int | None = None


BACKING_SERVICES = (
    BackingService(
        need="database",
        server="cockroachdb",
        program="postgres",
        port=26257,
        setting="DATABASE_URL",
        prefix="DATABASE_",
        address="postgresql://meridian@{host}:{port}/{database}",
    ),
    BackingService(
        need="redis",
        server="redis",
        program="redis",
        port=6379,
        setting="REDIS_URL",
        prefix="REDIS_",
        address="redis://{host}:{port}/0",
    ),
    BackingService(
        need="kafka",
        server="kafka",
        program="kafka",
        port=9092,
        setting="KAFKA_BOOTSTRAP_SERVERS",
        prefix="KAFKA_",
        address="{host}:{port}",
        # Kafka's EXTERNAL listener (container port 9094) advertises localhost:9092.
        forwarded_port=9094,
    ),
)
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
