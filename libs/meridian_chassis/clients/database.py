"""The service's PostgreSQL (CockroachDB) pool: asyncpg."""

from __future__ import annotations

from typing import Any, ClassVar

import asyncpg

from meridian_chassis.clients import DependencyUnavailableError, configured, opened
from meridian_chassis.config import Settings
from meridian_chassis.transport import database_ssl

POOL_SIZE = 10


class DatabaseClient:
    """`pool` is an asyncpg pool; connections open on first use and are reused, so a
    database that is down at start-up is connected to once it is up."""

    need: ClassVar[str] = "database"

    def __init__(self, url: str, ssl: Any, timeout: float) -> None:
        # CockroachDB accepts the PostgreSQL wire protocol; asyncpg only knows that scheme.
        self.dsn = url.replace("cockroachdb://", "postgresql://", 1)
        self.ssl = ssl
        self.timeout = timeout
        self._pool: asyncpg.Pool | None = None
        self._closed = False

    @classmethod
    def from_settings(cls, settings: Settings) -> DatabaseClient:
        url = configured(settings.database_url, "DATABASE_URL")
        ssl = database_ssl(settings.security.database)
        return cls(url, ssl, settings.client_timeout_seconds)

    @property
    def pool(self) -> asyncpg.Pool:
        return opened(self._pool, "database: the pool is not open yet")

    async def open(self) -> asyncpg.Pool:
        if self._closed:
            raise DependencyUnavailableError("database: the pool is closed (shutting down)")
        if self._pool is None:
            # min_size=0: opening connects nothing, so an outage does not stop start-up.
            self._pool = await asyncpg.create_pool(
                self.dsn,
                ssl=self.ssl,
                min_size=0,
                max_size=POOL_SIZE,
                timeout=self.timeout,
                command_timeout=self.timeout,
            )
        return self._pool

    async def check(self) -> None:
        pool = await self.open()
        await pool.fetchval("SELECT 1", timeout=self.timeout)

    async def close(self) -> None:
        self._closed = True
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await pool.close()
            except Exception:  # shutting down: drop what is left
                pool.terminate()


CLIENT = DatabaseClient
