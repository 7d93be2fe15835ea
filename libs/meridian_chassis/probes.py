"""Readiness probes of the backing services over connections kept between checks.

Each probe keeps one connection (PostgreSQL), one small pool (Redis) or one client
(Kafka) and reuses it, so probing does not open connections; a connection that fails
or times out is dropped and the next check connects again. This module loads the
database, Redis and Kafka client libraries, the slowest part of starting a service,
so the chassis imports it in the background once the listener answers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import asyncpg
import redis.asyncio as redis
from aiokafka import AIOKafkaClient
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from meridian_chassis.checks import Check
from meridian_chassis.config import Settings
from meridian_chassis.transport import database_ssl, kafka_options, redis_options


class DatabaseProbe:
    def __init__(self, url: str, ssl: Any, timeout: float) -> None:
        # CockroachDB accepts the PostgreSQL wire protocol; asyncpg only knows that scheme.
        self.dsn = url.replace("cockroachdb://", "postgresql://", 1)
        self.ssl = ssl
        self.timeout = timeout
        self.connection: asyncpg.Connection | None = None

    async def __call__(self) -> None:
        try:
            if self.connection is None or self.connection.is_closed():
                self.connection = await asyncpg.connect(
                    self.dsn, ssl=self.ssl, timeout=self.timeout
                )
            await self.connection.fetchval("SELECT 1", timeout=self.timeout)
        except BaseException:
            self.drop()
            raise

    def drop(self) -> None:
        if self.connection is not None:
            self.connection.terminate()
            self.connection = None

    async def close(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(Exception):
                await self.connection.close(timeout=self.timeout)
            self.connection = None


class RedisProbe:
    def __init__(self, url: str, options: dict[str, Any], timeout: float) -> None:
        self.client = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            max_connections=2,
            **options,
        )

    async def __call__(self) -> None:
        try:
            await self.client.ping()
        except BaseException:
            await self.client.connection_pool.disconnect()
            raise

    async def close(self) -> None:
        await self.client.aclose()


class KafkaProbe:
    def __init__(self, servers: Sequence[str], options: dict[str, Any], timeout: float) -> None:
        self.servers = list(servers)
        self.options = options
        self.timeout = timeout
        self.client: AIOKafkaClient | None = None

    async def __call__(self) -> None:
        if self.client is None:
            client = AIOKafkaClient(
                bootstrap_servers=self.servers,
                request_timeout_ms=int(self.timeout * 1000),
                **self.options,
            )
            try:
                await client.bootstrap()
            except BaseException:
                await client.close()
                raise
            self.client = client
            return
        # Asks a known broker over the client's open connection (reconnecting if needed).
        await self.client.fetch_all_metadata()

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None


def checks_for(settings: Settings) -> list[Check]:
    """A check for every dependency the settings configure."""
    timeout = settings.readiness_timeout_seconds
    security = settings.security
    checks = []
    if settings.database_url:
        database = DatabaseProbe(settings.database_url, database_ssl(security.database), timeout)
        checks.append(Check("database", database, database.close))
    if settings.redis_url:
        cache = RedisProbe(settings.redis_url, redis_options(security.redis), timeout)
        checks.append(Check("redis", cache, cache.close))
    if settings.kafka_bootstrap_servers:
        kafka = KafkaProbe(settings.kafka_bootstrap_servers, kafka_options(security.kafka), timeout)
        checks.append(Check("kafka", kafka, kafka.close))
    return checks
