"""What a service tells the chassis about itself."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from meridian_chassis.declaration import load_packaged_declaration

if TYPE_CHECKING:
    from starlette.routing import BaseRoute


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    dependencies: frozenset[str] = frozenset()
    routes: Sequence[BaseRoute] = field(default_factory=tuple)


def declared_service(package: str, routes: Sequence[BaseRoute] = ()) -> ServiceSpec:
    """The ServiceSpec that services/<package>/service.yaml declares."""
    declaration = load_packaged_declaration(package)
    return ServiceSpec(name=declaration.name, dependencies=declaration.needs, routes=tuple(routes))
