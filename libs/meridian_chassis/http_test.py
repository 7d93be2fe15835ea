import asyncio
import logging
import threading
import time

import pytest
from starlette.testclient import TestClient

from meridian.platform.v1.service_info_pb2 import ServiceInfo
from meridian_chassis.checks import Check
from meridian_chassis.http import create_app
from meridian_chassis.lifecycle import Lifecycle
from meridian_chassis.readiness import ReadinessMonitor

INFO = ServiceInfo(
    name="ledger-test", version="1.2.3", revision="0abc123", build_date="2026-11-26T00:00:00Z"
)


async def healthy() -> None:
    return None


async def refused() -> None:
    raise ConnectionRefusedError("connection refused")


async def hangs() -> None:
    await asyncio.sleep(10)


def client(*checks: Check, lifecycle: Lifecycle | None = None) -> TestClient:
    readiness = ReadinessMonitor(checks, timeout=0.2, max_age=0)
    app = create_app(INFO, lifecycle or Lifecycle(), readiness)
    return TestClient(app)


def _started(http: TestClient) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if http.get("/health/startup").status_code == 200:
            return True
        time.sleep(0.01)
    return False


def test_version_serves_the_build_info() -> None:
    with client() as http:
        assert http.get("/version").json() == {
            "name": "ledger-test",
            "version": "1.2.3",
            "revision": "0abc123",
            "build_date": "2026-11-26T00:00:00Z",
        }


def test_ready_names_each_check_and_fails_when_any_is_down() -> None:
    with client(Check("database", healthy), Check("redis", refused), Check("kafka", hangs)) as http:
        assert _started(http)
        reply = http.get("/health/ready")
    assert reply.status_code == 503
    assert reply.json()["checks"] == {
        "database": {"ok": True, "detail": "ok", "critical": True},
        "redis": {"ok": False, "detail": "failed", "critical": True},
        "kafka": {"ok": False, "detail": "timed out", "critical": True},
    }


def test_a_failing_optional_check_leaves_the_service_ready_and_degraded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with (
        caplog.at_level(logging.INFO, "meridian.readiness"),
        client(Check("database", healthy), Check("redis", refused, critical=False)) as http,
    ):
        assert _started(http)
        reply = http.get("/health/ready")
        metrics = http.get("/metrics").text
    assert reply.status_code == 200
    assert reply.json() == {
        "status": "degraded",
        "checks": {
            "database": {"ok": True, "detail": "ok", "critical": True},
            "redis": {"ok": False, "detail": "failed", "critical": False},
        },
    }
    assert 'meridian_dependency_up{critical="false",dependency="redis"} 0.0' in metrics
    assert 'meridian_dependency_up{critical="true",dependency="database"} 1.0' in metrics
    (degraded,) = (r for r in caplog.records if r.name == "meridian.readiness")
    assert degraded.getMessage() == "dependency degraded, serving without it"
    assert (degraded.check, degraded.critical) == ("redis", False)  # type: ignore[attr-defined]


def test_ready_names_the_failing_check_and_logs_why_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def leaky() -> None:
        raise PermissionError('role "ledger_app" denied on internal-db.bank:26257')

    with (
        caplog.at_level(logging.INFO, "meridian.readiness"),
        client(Check("database", leaky)) as http,
    ):
        assert _started(http)
        replies = [http.get("/health/ready") for _ in range(3)]
    assert {reply.text for reply in replies} == {
        '{"status":"not ready","checks":{"database":{"ok":false,"detail":"failed","critical":true}}}'
    }
    failures = [r for r in caplog.records if r.getMessage() == "readiness check failed"]
    assert [(r.check, r.error) for r in failures] == [  # type: ignore[attr-defined]
        ("database", 'PermissionError: role "ledger_app" denied on internal-db.bank:26257')
    ]


def test_a_recovered_check_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    outcomes = [ConnectionRefusedError("down"), None]

    async def flaky() -> None:
        outcome = outcomes.pop(0) if outcomes else None
        if outcome is not None:
            raise outcome

    with caplog.at_level(logging.INFO, "meridian.readiness"), client(Check("redis", flaky)) as http:
        assert _started(http)
        assert http.get("/health/ready").status_code == 200
    messages = [r.getMessage() for r in caplog.records if r.name == "meridian.readiness"]
    assert messages == ["readiness check failed", "readiness check passed"]


def test_no_redirect_is_built_from_the_host_header() -> None:
    with client() as http:
        reply = http.get("/health/ready/", headers={"Host": "evil.example"}, follow_redirects=False)
    assert reply.status_code == 404
    assert "location" not in reply.headers


def test_ready_when_every_check_passes() -> None:
    with client(Check("database", healthy)) as http:
        assert _started(http)
        reply = http.get("/health/ready")
    assert reply.status_code == 200
    assert reply.json()["status"] == "ready"


def test_checks_run_concurrently() -> None:
    slow = [Check(f"slow-{n}", hangs) for n in range(5)]
    with client(*slow) as http:
        assert _started(http)
        reply = http.get("/health/ready", timeout=5)
        assert reply.elapsed.total_seconds() < 1.0


def test_liveness_ignores_dependencies_and_draining_fails_readiness() -> None:
    lifecycle = Lifecycle()
    with client(Check("database", refused), lifecycle=lifecycle) as http:
        assert http.get("/health/live").status_code == 200
        assert _started(http)
        lifecycle.drain()
        assert http.get("/health/ready").json() == {"status": "draining", "checks": {}}
        assert http.get("/health/live").status_code == 200


def test_startup_fails_until_the_first_round_of_checks_is_done() -> None:
    release = threading.Event()

    async def slow_to_connect() -> None:
        while not release.is_set():
            await asyncio.sleep(0.01)

    with client(Check("database", slow_to_connect)) as http:
        assert http.get("/health/live").status_code == 200
        assert http.get("/health/startup").json() == {"status": "starting"}
        assert http.get("/health/startup").status_code == 503
        assert http.get("/health/ready").status_code == 503
        release.set()
        assert _started(http)
        assert http.get("/health/ready").status_code == 200


def test_startup_fails_until_the_app_has_started() -> None:
    app = create_app(INFO, Lifecycle(), ReadinessMonitor((), timeout=0.2, max_age=0))
    http = TestClient(app)  # without the context manager the lifespan never runs
    assert http.get("/health/startup").status_code == 503


def test_metrics_count_requests_by_route_and_status() -> None:
    with client() as http:
        for _ in range(3):
            http.get("/version")
        http.get("/no-such-page")
        text = http.get("/metrics").text
    assert 'http_requests_total{method="GET",route="/version",status="200"} 3.0' in text
    assert 'http_requests_total{method="GET",route="unmatched",status="404"} 1.0' in text
    assert 'http_request_duration_seconds_count{method="GET",route="/version"} 3.0' in text
