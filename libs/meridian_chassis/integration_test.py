"""The chassis against real PostgreSQL, Redis and Kafka-protocol servers."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from meridian_chassis.service import CONFIG_ERROR_EXIT_CODE
from meridian_testing.process import (
    Reply,
    RunningService,
    http_get,
    python_command,
    running_service,
    start_process,
    wait_until,
)
from meridian_testing.servers import BackingServices, backing_services

# A service with every dependency and one slow endpoint, to watch in-flight requests drain.
SERVICE_CODE = """
import asyncio
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from meridian_chassis import ServiceSpec, run

async def slow(request):
    await asyncio.sleep(float(request.query_params.get("seconds", "2")))
    return PlainTextResponse("done")

run(ServiceSpec("chassis-probe", frozenset({"database", "redis", "kafka"}), [Route("/slow", slow)]))
"""


@pytest.fixture(scope="module")
def servers() -> Iterator[BackingServices]:
    with backing_services() as started:
        yield started


@pytest.fixture()
def service(servers: BackingServices) -> Iterator[RunningService]:
    env = {**servers.environment(), "READINESS_TIMEOUT_SECONDS": "1", "SHUTDOWN_DELAY_SECONDS": "1"}
    with running_service(python_command(SERVICE_CODE), env) as running:
        yield running


def test_ready_with_every_dependency_up(service: RunningService) -> None:
    reply = service.get("/health/ready")
    assert reply.status == 200, reply.text
    assert reply.body["checks"] == {
        name: {"ok": True, "detail": "ok"} for name in ("database", "redis", "kafka")
    }


@pytest.mark.parametrize("dependency", ["database", "redis", "kafka"])
def test_readiness_follows_a_dependency_outage_and_recovery(
    servers: BackingServices, service: RunningService, dependency: str
) -> None:
    server = getattr(servers, dependency)
    assert service.get("/health/ready").status == 200
    server.stop()
    try:
        down = service.get("/health/ready")
        assert down.status == 503
        assert down.body["checks"][dependency]["ok"] is False
        others = {name for name, check in down.body["checks"].items() if check["ok"]}
        assert others == {"database", "redis", "kafka"} - {dependency}
        assert service.get("/health/live").status == 200
    finally:
        server.start()
    assert wait_until(lambda: service.get("/health/ready").status == 200, timeout=20)


def test_sigterm_fails_readiness_drains_in_flight_requests_and_exits_zero(
    service: RunningService,
) -> None:
    replies: list[Reply] = []
    slow = threading.Thread(target=lambda: replies.append(http_get(service.url("/slow?seconds=2"))))
    slow.start()
    time.sleep(0.3)  # the slow request is in flight
    service.process.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    draining = service.get("/health/ready")
    assert draining.status == 503
    assert draining.body["status"] == "draining"
    slow.join(timeout=10)
    assert [reply.text for reply in replies] == ["done"]
    out, _ = service.process.communicate(timeout=15)
    assert service.process.returncode == 0
    events = [json.loads(line)["message"] for line in out.splitlines() if line.startswith("{")]
    assert "draining" in events
    assert events[-1] == "stopped"


def test_each_request_is_one_json_log_line_with_latency(servers: BackingServices) -> None:
    with running_service(python_command(SERVICE_CODE), servers.environment()) as service:
        service.get("/version")
        service.process.send_signal(signal.SIGTERM)
        out, _ = service.process.communicate(timeout=15)
    requests = [
        entry
        for entry in map(json.loads, filter(None, out.splitlines()))
        if entry["message"] == "request" and entry["path"] == "/version"
    ]
    assert len(requests) == 1
    assert requests[0]["status"] == 200
    assert requests[0]["duration_ms"] > 0
    assert requests[0]["service"] == "chassis-probe"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "DATABASE_URL is required; expected a URL like postgresql://"),
        (
            {
                "DATABASE_URL": "postgresql://db/x",
                "REDIS_URL": "redis://r",
                "KAFKA_BOOTSTRAP_SERVERS": "k",
            },
            "KAFKA_BOOTSTRAP_SERVERS='k' is malformed; expected comma-separated host:port pairs",
        ),
        (
            {
                "DATABASE_URL": "postgresql://db/x",
                "REDIS_URL": "redis://r",
                "KAFKA_BOOTSTRAP_SERVERS": "k:1",
                "PORT": "web",
            },
            "PORT='web' is malformed; expected an integer from 1 to 65535",
        ),
    ],
)
def test_bad_configuration_exits_non_zero_before_serving(env: dict[str, str], message: str) -> None:
    process = start_process(python_command(SERVICE_CODE), env)
    out, err = process.communicate(timeout=30)
    assert process.returncode == CONFIG_ERROR_EXIT_CODE
    assert message in err
    assert "starting" not in out
