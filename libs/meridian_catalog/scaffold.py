"""`make service NAME=<name>`: a new service directory, and every derived file updated.

Everything is validated and rendered before anything is written, so a bad name, a taken
port or a broken declaration elsewhere changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from meridian_catalog.catalog import (
    RESERVED_PORTS,
    SERVICES_DIR,
    check_unique_ports,
    load_catalog,
)
from meridian_catalog.derived import write_derived
from meridian_chassis.declaration import (
    DECLARATION_FILE,
    DEPENDENCIES,
    DNS_LABEL,
    Declaration,
    DeclarationError,
    package_name,
)

FIRST_PORT = 8081


class ScaffoldError(Exception):
    """The new service cannot be created as asked; nothing was written."""


def _files(declaration: Declaration) -> dict[str, str]:
    name, package = declaration.name, declaration.package
    needs = ", ".join(sorted(declaration.needs))
    optional = ", ".join(sorted(declaration.optional))
    return {
        "BUILD": "meridian_service()\n",
        "__init__.py": "",
        DECLARATION_FILE: (
            f"# The {name} service: its name (its package's, in dashes), its host port in\n"
            "# `make run` and Tilt, the backing services it needs (any of database, redis, kafka)\n"
            "# and which of those it keeps serving without (`optional`: readiness ignores them).\n"
            "# After editing, run `make services`.\n"
            f"name: {name}\n"
            f"port: {declaration.port}\n"
            f"needs: [{needs}]\n"
            f"optional: [{optional}]\n"
        ),
        "main.py": (
            f'"""Entry point of the {name} service."""\n'
            "\n"
            "from meridian_chassis import declared_service, run\n"
            "\n"
            f'SERVICE = declared_service("{package}")\n'
            "\n"
            "\n"
            "def main() -> None:\n"
            "    run(SERVICE)\n"
            "\n"
            "\n"
            'if __name__ == "__main__":\n'
            "    main()\n"
        ),
        "main_test.py": (
            f"from {package}.main import SERVICE\n"
            "from meridian_testing.contract import check_service_contract\n"
            "\n"
            "\n"
            "def test_service_contract() -> None:\n"
            f'    check_service_contract(SERVICE, "{package}.main")\n'
        ),
    }


def _declaration(
    root: Path, name: str, port: int | None, needs: Iterable[str], optional: Iterable[str] = ()
) -> tuple[Declaration, list[Declaration]]:
    if not DNS_LABEL.match(name) or "--" in name:
        raise ScaffoldError(
            f"NAME={name!r} is not a valid service name: use lowercase letters, digits and "
            "single dashes, starting with a letter and ending with a letter or digit, at most "
            "63 characters (e.g. NAME=payment-order)"
        )
    package = package_name(name)
    try:
        catalog = load_catalog(root)
    except DeclarationError as error:
        raise ScaffoldError(f"fix the existing services first: {error}") from None
    if (
        any(existing.name == name for existing in catalog)
        or (root / SERVICES_DIR / package).exists()
    ):
        raise ScaffoldError(f"services/{package} already exists: {name} is taken")
    needs = sorted(set(needs))
    unknown = [need for need in needs if need not in DEPENDENCIES]
    if unknown:
        raise ScaffoldError(
            f"NEEDS names {', '.join(unknown)}; choose from {', '.join(DEPENDENCIES)} "
            "(comma-separated, e.g. NEEDS=database,redis)"
        )
    optional = sorted(set(optional))
    not_needed = [need for need in optional if need not in needs]
    if not_needed:
        raise ScaffoldError(
            f"OPTIONAL names {', '.join(not_needed)}, which NEEDS does not: a service can only "
            "serve without what it needs (e.g. NEEDS=database,redis OPTIONAL=redis)"
        )
    if port is None:
        port = max([FIRST_PORT - 1, *(existing.port for existing in catalog)]) + 1
        while port in RESERVED_PORTS:
            port += 1
    if not 1024 <= port <= 65535:
        raise ScaffoldError(f"PORT={port} must be from 1024 to 65535")
    declaration = Declaration(
        name=name,
        package=package,
        port=port,
        needs=frozenset(needs),
        optional=frozenset(optional),
    )
    try:
        check_unique_ports([*catalog, declaration])
    except DeclarationError as error:
        raise ScaffoldError(f"PORT={port} is taken: {error}") from None
    return declaration, sorted([*catalog, declaration], key=lambda d: d.name)


def create_service(
    root: Path,
    name: str,
    port: int | None,
    needs: Iterable[str],
    say: Callable[[str], None],
    optional: Iterable[str] = (),
) -> Declaration:
    declaration, catalog = _declaration(root, name, port, needs, optional)
    directory = root / SERVICES_DIR / declaration.package
    directory.mkdir(parents=True)
    for filename, content in _files(declaration).items():
        (directory / filename).write_text(content)
        say(f"wrote   {SERVICES_DIR}/{declaration.package}/{filename}")
    write_derived(root, catalog, say)
    return declaration
