"""Every service in the repository, read from its declaration."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from meridian_chassis.declaration import (
    BACKING_SERVICES,
    DECLARATION_FILE,
    Declaration,
    DeclarationError,
    parse_declaration,
)

SERVICES_DIR = "services"
# Host ports the local stack and Tilt give to something other than a service.
RESERVED_PORTS = {
    **{backing.port: f"the local {backing.server}" for backing in BACKING_SERVICES},
    8090: "CockroachDB's console under Tilt (Tiltfile)",
}


def service_dirs(root: Path) -> list[Path]:
    """Every services/<package>/ with a BUILD file is a service."""
    return sorted(build.parent for build in (root / SERVICES_DIR).glob("*/BUILD"))


def load_catalog(root: Path) -> list[Declaration]:
    """All declarations, sorted by name; a missing or clashing one is an error."""
    declarations = []
    for directory in service_dirs(root):
        path = directory / DECLARATION_FILE
        where = str(path.relative_to(root))
        if not path.is_file():
            raise DeclarationError(
                f"{where} is missing: {directory.relative_to(root)} has a BUILD file, so it is "
                "a service, and every service declares its port and needs there"
            )
        declarations.append(parse_declaration(directory.name, path.read_text(), where))
    check_unique_ports(declarations)
    return sorted(declarations, key=lambda declaration: declaration.name)


def check_unique_ports(declarations: Sequence[Declaration]) -> None:
    owners: dict[int, str] = {}
    for declaration in declarations:
        if declaration.port in RESERVED_PORTS:
            raise DeclarationError(
                f"{declaration.name} declares port {declaration.port} in its {DECLARATION_FILE}, "
                f"which is {RESERVED_PORTS[declaration.port]}'s; choose another"
            )
        other = owners.setdefault(declaration.port, declaration.name)
        if other != declaration.name:
            raise DeclarationError(
                f"services {other} and {declaration.name} both declare port {declaration.port} "
                f"in their {DECLARATION_FILE}; each needs its own"
            )
