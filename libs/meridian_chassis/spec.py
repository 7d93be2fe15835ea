"""What a service tells the chassis about itself."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias

from meridian_chassis.declaration import load_packaged_declaration, package_name

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from meridian_chassis.clients import Clients

# A service's routes, or a function that makes them from the service's clients.
Routes: TypeAlias = "Sequence[BaseRoute] | Callable[[Clients], Sequence[BaseRoute]]"
# By convention, <package>/routes.py defines `routes(clients)`: loaded once the listener
# is bound, so its client libraries do not delay it.
ROUTES_MODULE = "routes"


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    dependencies: frozenset[str] = frozenset()
    routes: Routes = field(default_factory=tuple)
    optional: frozenset[str] = frozenset()

    @property
    def package(self) -> str:
        """The Python package the service's code lives in (live reload watches it)."""
        return package_name(self.name)


def _routes_module(package: str) -> Routes:
    module = f"{package}.{ROUTES_MODULE}"
    if importlib.util.find_spec(module) is None:
        return ()

    def routes(clients: Clients) -> Sequence[BaseRoute]:
        made: Sequence[BaseRoute] = importlib.import_module(module).routes(clients)
        return made

    return routes


def declared_service(package: str, routes: Routes | None = None) -> ServiceSpec:
    """The ServiceSpec that services/<package>/service.yaml declares; its routes are
    `routes`, else those of <package>/routes.py, if there is one."""
    declaration = load_packaged_declaration(package)
    return ServiceSpec(
        name=declaration.name,
        dependencies=declaration.needs,
        routes=_routes_module(package) if routes is None else routes,
        optional=declaration.optional,
    )
