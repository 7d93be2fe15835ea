"""The clients of the backing services a service declares, opened by the chassis.

A service's code asks for a client by its class, at start-up, in its `routes(clients)`:

    from meridian_chassis.clients import Clients
    from meridian_chassis.clients.database import DatabaseClient

    def routes(clients: Clients) -> list[BaseRoute]:
        database = clients.get(DatabaseClient)   # asyncpg pool: database.pool

Each client class lives in meridian_chassis.clients.<need> (database, redis, kafka) and
is the only module that imports its client library, so a service's image holds the
libraries of what it declares and nothing else (build-support/macros.py adds the
declared needs' modules; the chassis imports them by name). Asking for a client the
service's service.yaml does not declare fails at start, before the service serves.

The chassis opens the clients in the background once the listener answers, checks
them for readiness (the same pool and connections requests use), keeps them through
the drain while in-flight requests finish, and closes them at shutdown.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import ClassVar, Protocol, TypeVar, cast

from meridian_chassis.checks import Check
from meridian_chassis.config import Settings
from meridian_chassis.declaration import DECLARATION_FILE, package_name


class UndeclaredDependencyError(Exception):
    """Service code asked for a client of a backing service it does not declare."""


class DependencyUnavailableError(Exception):
    """A client was used before the chassis opened it, or after it closed it."""


T = TypeVar("T")


def opened(client: T | None, state: str) -> T:
    """The library's client object, or the error a request using it now gets (503)."""
    if client is None:
        raise DependencyUnavailableError(state)
    return client


def configured(value: str | None, setting: str) -> str:
    """A declared need's setting, which load_settings has made sure is set."""
    if value is None:
        raise DependencyUnavailableError(f"{setting} is not set")
    return value


class BackingClient(Protocol):
    need: ClassVar[str]

    @classmethod
    def from_settings(cls, settings: Settings) -> BackingClient: ...

    async def check(self) -> None:
        """Readiness: one round trip over the client's own connections."""

    async def close(self) -> None: ...


C = TypeVar("C", bound=BackingClient)


class Clients:
    def __init__(
        self,
        service: str,
        settings: Settings,
        needs: frozenset[str],
        optional: frozenset[str] = frozenset(),
    ) -> None:
        self.service = service
        self.settings = settings
        self.needs = needs
        self.optional = optional
        self._opened: dict[str, BackingClient] = {}

    def missing(self) -> list[str]:
        """Problems with this build: a declared need whose client module it lacks (found
        without importing it, which `load` does later)."""
        return [
            f"{need} is declared but {__name__}.{need} is not in this build: the service's "
            f"BUILD target must depend on libs/meridian_chassis/clients/{need}.py "
            "(meridian_service() adds it from service.yaml)"
            for need in sorted(self.needs)
            if importlib.util.find_spec(f"{__name__}.{need}") is None
        ]

    def get(self, kind: type[C]) -> C:
        """The service's client of this class; one per service, shared with readiness."""
        if kind.need not in self.needs:
            package = package_name(self.service)
            raise UndeclaredDependencyError(
                f"{self.service} asks for its {kind.need} client ({kind.__name__}), but "
                f"services/{package}/{DECLARATION_FILE} does not declare it: add {kind.need} "
                f"to its `needs` (now [{', '.join(sorted(self.needs))}]) and run `make services`"
            )
        if kind.need not in self._opened:
            self._opened[kind.need] = kind.from_settings(self.settings)
        return cast(C, self._opened[kind.need])

    def load(self) -> list[Check]:
        """Makes every declared client (importing its library: slow, so called off the
        event loop) and returns their readiness checks; optional needs are not critical."""
        checks = []
        for need in sorted(self.needs):
            if need not in self._opened:
                module = importlib.import_module(f"{__name__}.{need}")
                self._opened[need] = module.CLIENT.from_settings(self.settings)
            client = self._opened[need]
            checks.append(
                Check(need, client.check, client.close, critical=need not in self.optional)
            )
        return checks
