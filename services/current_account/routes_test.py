"""current-account's wiring routes against real PostgreSQL, Redis and Kafka, and the
service staying ready and answering while its optional Redis is down."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator

import asyncpg
import pytest
import redis
from aiokafka import AIOKafkaConsumer

from current_account.main import SERVICE
from current_account.routes import TOPIC
from meridian_testing.contract import service_command
from meridian_testing.process import RunningService, running_service, wait_until
from meridian_testing.servers import BackingServices, backing_services

SERVICE_MODULE = "current_account.main"
CLIENT_TIMEOUT_SECONDS = 1.0
SERVICE_ENV = {
    "MERIDIAN_BUILD_REVISION": "abc1234",
    "READINESS_CACHE_SECONDS": "0",
    "READINESS_TIMEOUT_SECONDS": "1",
    "CLIENT_TIMEOUT_SECONDS": str(CLIENT_TIMEOUT_SECONDS),
}


@pytest.fixture(scope="module")
def servers() -> Iterator[BackingServices]:
    with backing_services() as started:
        yield started


@pytest.fixture()
def service(servers: BackingServices) -> Iterator[RunningService]:
    assert SERVICE.optional == {"redis"}, "service.yaml declares Redis optional"
    env = {**servers.environment(), **SERVICE_ENV}
    with running_service(service_command(SERVICE_MODULE), env) as running:
        assert wait_until(lambda: running.get("/health/ready").status == 200, timeout=20)
        yield running


async def _row(servers: BackingServices, key: str) -> str | None:
    connection = await asyncpg.connect(servers.database.url())
    try:
        value: str | None = await connection.fetchval("SELECT value FROM wiring WHERE key=$1", key)
        return value
    finally:
        await connection.close()


async def _events(servers: BackingServices) -> list[dict[str, str]]:
    consumer = AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=servers.kafka.bootstrap_servers(),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=5000)
        return [json.loads(r.value) for records in batches.values() for r in records if r.value]
    finally:
        await consumer.stop()


def test_a_request_writes_and_reads_a_row_sets_a_key_and_publishes_an_event(
    servers: BackingServices, service: RunningService
) -> None:
    reply = service.request("PUT", "/v1/wiring/acct-1", b"opened")
    assert reply.status == 200, reply.text
    assert reply.body["stored"] == "opened"
    assert (reply.body["cached"], reply.body["cache_error"]) == (True, None)
    assert reply.body["event"]["topic"] == TOPIC
    assert reply.body["event"]["offset"] >= 0

    assert asyncio.run(_row(servers, "acct-1")) == "opened"
    cache = redis.Redis(host="127.0.0.1", port=servers.redis.port)
    assert cache.get("wiring:acct-1") == b"opened"
    cache.close()
    assert {"key": "acct-1", "value": "opened"} in asyncio.run(_events(servers))
    again = service.get("/v1/wiring/acct-1")
    assert again.body == {"key": "acct-1", "value": "opened", "source": "cache"}


def test_bad_keys_and_unknown_keys_are_refused_by_name(service: RunningService) -> None:
    bad = service.request("PUT", "/v1/wiring/no%20spaces", b"x")
    assert bad.status == 400
    assert "expected 1 to 64 letters" in bad.body["error"]
    assert service.get("/v1/wiring/never-written").status == 404


def _ready(service: RunningService) -> dict[str, object]:
    reply = service.get("/health/ready")
    body: dict[str, object] = {"http": reply.status, **reply.body}
    return body


def test_with_redis_down_the_service_stays_ready_and_answers_from_the_database(
    servers: BackingServices, service: RunningService
) -> None:
    assert service.request("PUT", "/v1/wiring/acct-2", b"before").status == 200
    servers.redis.stop()
    try:
        stopped = time.monotonic()
        assert wait_until(lambda: _ready(service)["status"] == "degraded", timeout=10)
        print(f"redis stopped; /health/ready degraded after {time.monotonic() - stopped:.2f}s")
        samples = [_ready(service) for _ in range(5)]
        print("/health/ready while redis is down:", json.dumps(samples[-1]))
        assert all(sample["http"] == 200 for sample in samples)

        started = time.monotonic()
        put = service.request("PUT", "/v1/wiring/acct-2", b"during")
        put_seconds = time.monotonic() - started
        started = time.monotonic()
        got = service.get("/v1/wiring/acct-2")
        get_seconds = time.monotonic() - started
        print(f"PUT {put.status} in {put_seconds:.3f}s: {put.text}")
        print(f"GET {got.status} in {get_seconds:.3f}s: {got.text}")
        assert put.status == 200, put.text
        assert (put.body["stored"], put.body["cached"]) == ("during", False)
        assert put.body["cache_error"] == "ConnectionError"
        assert got.body == {"key": "acct-2", "value": "during", "source": "database"}
        assert max(put_seconds, get_seconds) < CLIENT_TIMEOUT_SECONDS + 1

        metrics = service.get("/metrics").text
        degraded = [line for line in metrics.splitlines() if "meridian_dependency_up{" in line]
        print("metrics:", *degraded, sep="\n  ")
        assert 'meridian_dependency_up{critical="false",dependency="redis"} 0.0' in degraded
        logged = [json.loads(line) for line in service.stdout.lines() if '"dependency ' in line]
        print("log:", *map(json.dumps, logged), sep="\n  ")
        assert logged[0]["message"] == "dependency degraded, serving without it"
        assert (logged[0]["check"], logged[0]["critical"]) == ("redis", False)
    finally:
        servers.redis.start()
    assert wait_until(lambda: _ready(service)["status"] == "ready", timeout=10)
    again = service.request("PUT", "/v1/wiring/acct-2", b"after")
    print(f"redis back: /health/ready ready; PUT {again.status}: {again.text}")
    assert again.body["cached"] is True


def test_with_redis_hanging_calls_give_up_after_the_client_timeout(
    servers: BackingServices, service: RunningService
) -> None:
    assert servers.redis.process is not None
    servers.redis.process.send_signal(signal.SIGSTOP)  # up, but answers nothing
    try:
        assert wait_until(lambda: _ready(service)["status"] == "degraded", timeout=10)
        started = time.monotonic()
        put = service.request("PUT", "/v1/wiring/acct-3", b"hung")
        seconds = time.monotonic() - started
        print(f"redis hanging: PUT {put.status} in {seconds:.3f}s: {put.text}")
        assert put.status == 200, put.text
        assert (put.body["cached"], put.body["cache_error"]) == (False, "TimeoutError")
        assert CLIENT_TIMEOUT_SECONDS * 0.9 <= seconds < CLIENT_TIMEOUT_SECONDS + 1
    finally:
        servers.redis.process.send_signal(signal.SIGCONT)
    assert wait_until(lambda: _ready(service)["status"] == "ready", timeout=10)
