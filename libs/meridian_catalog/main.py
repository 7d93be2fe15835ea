"""Meridian's service catalog tool.

catalog new NAME [--port N] [--needs database,redis,kafka] [--optional redis]
                                                              add a service
catalog generate                                              refresh derived files
catalog check                                                 fail if any is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from meridian_catalog.catalog import load_catalog
from meridian_catalog.derived import stale_files, write_derived
from meridian_catalog.scaffold import ScaffoldError, create_service
from meridian_chassis.declaration import DeclarationError

REFRESH_COMMAND = "make services"


def _needs(value: str) -> list[str]:
    return [need.strip() for need in value.split(",") if need.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="catalog", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="repository root")
    commands = parser.add_subparsers(dest="command", required=True)
    new = commands.add_parser("new", help="add a service")
    new.add_argument("name", help="the service name, in dashes (e.g. payment-order)")
    new.add_argument("--port", type=int, help="host port (default: the next free one)")
    new.add_argument("--needs", type=_needs, default=[], help="e.g. database,redis,kafka")
    new.add_argument(
        "--optional", type=_needs, default=[], help="needs it serves without, e.g. redis"
    )
    commands.add_parser("generate", help="refresh the files derived from the declarations")
    commands.add_parser("check", help="fail if a derived file is stale")
    args = parser.parse_args(argv)
    root: Path = args.root

    try:
        if args.command == "new":
            declaration = create_service(
                root, args.name, args.port, args.needs, print, optional=args.optional
            )
            print(
                f"{declaration.name}: services/{declaration.package}/, port {declaration.port}."
                f" Try: ./pants test services/{declaration.package}: && make run"
            )
            return 0
        catalog = load_catalog(root)
        if args.command == "generate":
            write_derived(root, catalog, print)
            return 0
        stale = stale_files(root, catalog)
    except (ScaffoldError, DeclarationError) as error:
        print(f"catalog: {error}", file=sys.stderr)
        return 2
    if stale:
        print(
            "These files do not match services/*/service.yaml:\n"
            + "".join(f"  {path}\n" for path in stale)
            + f"Run `{REFRESH_COMMAND}` and commit the result.",
            file=sys.stderr,
        )
        return 1
    print(f"{len(catalog)} services; every derived file is current.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
