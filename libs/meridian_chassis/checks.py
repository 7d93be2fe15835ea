"""Readiness probes of the backing services, run concurrently with a short timeout."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import asyncpg
import redis.asyncio as redis
from aiokafka import AIOKafkaClient

from meridian_chassis.config import Settings

Probe = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Check:
    name: str
    probe: Probe


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


def database_probe(url: str, timeout: float) -> Probe:
    async def probe() -> None:
        # CockroachDB accepts the PostgreSQL wire protocol; asyncpg only knows that scheme.
        dsn = url.replace("cockroachdb://", "postgresql://", 1)
        connection = await asyncpg.connect(dsn, timeout=timeout)
        try:
            await connection.fetchval("SELECT 1", timeout=timeout)
        finally:
            await connection.close(timeout=timeout)

    return probe


def redis_probe(url: str, timeout: float) -> Probe:
    async def probe() -> None:
        client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry_on_timeout=False
        )
        try:
            await client.ping()
        finally:
            await client.aclose()

    return probe


def kafka_probe(servers: Sequence[str], timeout: float) -> Probe:
    async def probe() -> None:
        client = AIOKafkaClient(
            bootstrap_servers=list(servers),
            request_timeout_ms=int(timeout * 1000),
            connections_max_idle_ms=int(timeout * 2000),
        )
        try:
            await client.bootstrap()
        finally:
            await client.close()

    return probe


def checks_for(settings: Settings) -> list[Check]:
    """A check for every dependency the settings configure."""
    timeout = settings.readiness_timeout_seconds
    checks = []
    if settings.database_url:
        checks.append(Check("database", database_probe(settings.database_url, timeout)))
    if settings.redis_url:
        checks.append(Check("redis", redis_probe(settings.redis_url, timeout)))
    if settings.kafka_bootstrap_servers:
        checks.append(Check("kafka", kafka_probe(settings.kafka_bootstrap_servers, timeout)))
    return checks


async def _run_one(check: Check, timeout: float) -> CheckResult:
    try:
        await asyncio.wait_for(check.probe(), timeout)
    except TimeoutError:
        return CheckResult(check.name, ok=False, detail=f"no answer within {timeout:g}s")
    except Exception as error:  # any failure means "not ready": report it
        return CheckResult(check.name, ok=False, detail=f"{type(error).__name__}: {error}")
    return CheckResult(check.name, ok=True, detail="ok")


async def run_checks(checks: Sequence[Check], timeout: float) -> list[CheckResult]:
    return list(await asyncio.gather(*(_run_one(check, timeout) for check in checks)))
