"""The chassis against real PostgreSQL, Redis and Kafka-protocol servers."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from meridian_chassis.launch import CONFIG_ERROR_EXIT_CODE
from meridian_testing.process import (
    Reply,
    RunningService,
    http_get,
    python_command,
    running_service,
    start_process,
    wait_until,
)
from meridian_testing.servers import BackingServices, backing_services, free_port

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


READINESS_TIMEOUT_SECONDS = 1.0
READINESS_CACHE_SECONDS = 1.0
SERVICE_ENV = {
    "READINESS_TIMEOUT_SECONDS": str(READINESS_TIMEOUT_SECONDS),
    "READINESS_CACHE_SECONDS": str(READINESS_CACHE_SECONDS),
    "SHUTDOWN_DELAY_SECONDS": "1",
}


@pytest.fixture()
def service(servers: BackingServices) -> Iterator[RunningService]:
    with running_service(
        python_command(SERVICE_CODE), {**servers.environment(), **SERVICE_ENV}
    ) as running:
        yield running


def test_ready_with_every_dependency_up(service: RunningService) -> None:
    reply = service.get("/health/ready")
    assert reply.status == 200, reply.text
    assert reply.body["checks"] == {
        name: {"ok": True, "detail": "ok", "critical": True}
        for name in ("database", "redis", "kafka")
    }


def test_concurrent_ready_requests_open_no_backing_connections(
    servers: BackingServices, service: RunningService
) -> None:
    assert wait_until(lambda: service.get("/health/ready").status == 200, timeout=10)
    before = servers.database.connections_received(), servers.redis.connections_received()
    with ThreadPoolExecutor(32) as pool:
        replies = list(pool.map(lambda _: service.get("/health/ready"), range(300)))
    after = servers.database.connections_received(), servers.redis.connections_received()
    assert {reply.status for reply in replies} == {200}
    assert after == before


@pytest.mark.parametrize("dependency", ["database", "redis", "kafka"])
def test_readiness_follows_a_dependency_outage_and_recovery(
    servers: BackingServices, service: RunningService, dependency: str
) -> None:
    server = getattr(servers, dependency)
    assert wait_until(lambda: service.get("/health/ready").status == 200, timeout=10)
    server.stop()
    stopped = time.monotonic()
    try:
        # A shared result is at most READINESS_CACHE_SECONDS old and a check takes at
        # most the timeout: a probe after both sees the outage (k8s probes every 5 s).
        assert wait_until(lambda: service.get("/health/ready").status == 503, timeout=10)
        noticed = time.monotonic() - stopped
        assert noticed < READINESS_CACHE_SECONDS + READINESS_TIMEOUT_SECONDS + 1.0
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
    out = service.wait(timeout=15).stdout
    assert service.process.returncode == 0
    events = [json.loads(line)["message"] for line in out.splitlines() if line.startswith("{")]
    assert "draining" in events
    assert events[-1] == "stopped"


def test_each_request_is_one_json_log_line_with_latency(servers: BackingServices) -> None:
    with running_service(python_command(SERVICE_CODE), servers.environment()) as service:
        service.get("/version")
        service.process.send_signal(signal.SIGTERM)
        out = service.wait(timeout=15).stdout
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
                "DATABASE_SSLMODE": "verify-full",
                "REDIS_URL": "rediss://r:6380",
                "KAFKA_BOOTSTRAP_SERVERS": "k:1",
            },
            "DATABASE_SSLMODE=verify-full needs DATABASE_SSL_CA_FILE",
        ),
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


PASSWORD = "S3cretP4ss"  # noqa: S105 - what the output must not contain


def test_a_bad_configuration_is_one_message_without_secrets_or_traceback() -> None:
    env = {
        "DATABASE_URL": f"postgresql://app:{PASSWORD}@db:notaport/ledger",
        "REDIS_URL": f"redis://app:{PASSWORD}@cache:6379/0",
        "REDIS_PASSWORD": PASSWORD,
        "KAFKA_BOOTSTRAP_SERVERS": "kafka:9092",
        "PORT": "8_0_9_9",
        "SHUTDOWN_GRACE_SECONDS": "inf",
        "SHUTDOWN_DELAY_SECONDS": "inf",
        "READINESS_CACHE_SECONDS": "inf",
    }
    process = start_process(python_command(SERVICE_CODE), env)
    out, err = process.communicate(timeout=30)
    print(err)
    assert process.returncode == CONFIG_ERROR_EXIT_CODE
    assert PASSWORD not in out + err
    assert "Traceback" not in err
    assert err.count("invalid configuration") == 1
    assert "DATABASE_URL='postgresql://app:***@db:notaport/ledger' is malformed" in err
    for name in ("PORT", "SHUTDOWN_GRACE_SECONDS", "SHUTDOWN_DELAY_SECONDS"):
        assert f"  - {name}=" in err
    assert "REDIS_URL carries credentials and REDIS_USERNAME/REDIS_PASSWORD are set" in err


def test_credentials_read_from_mounted_files(servers: BackingServices, tmp_path: Path) -> None:
    """As Kubernetes mounts a Secret: one read-only file per key, named by NAME_FILE."""
    url = servers.database.url().replace("meridian@", f"meridian:{PASSWORD}@")
    secret = tmp_path / "DATABASE_URL"
    secret.write_text(url + "\n")
    secret.chmod(0o400)
    env = {**servers.environment(), "DATABASE_URL": "", "DATABASE_URL_FILE": str(secret)}
    with running_service(python_command(SERVICE_CODE), env) as service:
        assert wait_until(lambda: service.get("/health/ready").status == 200, timeout=10)
        service.terminate()
        exited = service.wait(timeout=15)
    assert PASSWORD not in exited.stdout + exited.stderr


def test_failing_checks_say_which_failed_and_log_why_without_credentials(
    servers: BackingServices,
) -> None:
    closed = free_port()
    env = {
        # Real servers refusing: a database that does not exist, nothing on Redis' port.
        "DATABASE_URL": f"postgresql://meridian:{PASSWORD}@127.0.0.1:"
        f"{servers.database.port}/no_such_database",
        "REDIS_URL": f"redis://ledger:{PASSWORD}@127.0.0.1:{closed}/0",
        "KAFKA_BOOTSTRAP_SERVERS": servers.kafka.bootstrap_servers(),
        "READINESS_CACHE_SECONDS": "0",
    }
    with running_service(python_command(SERVICE_CODE), env) as service:
        reply = service.get("/health/ready")
        redirect = http.client.HTTPConnection("127.0.0.1", service.port, timeout=5)
        redirect.request("GET", "/health/ready/", headers={"Host": "evil.example"})
        answer = redirect.getresponse()
        service.terminate()
        exited = service.wait(timeout=15)
    print(reply.text)
    assert reply.status == 503
    assert reply.body == {
        "status": "not ready",
        "checks": {
            "database": {"ok": False, "detail": "failed", "critical": True},
            "redis": {"ok": False, "detail": "failed", "critical": True},
            "kafka": {"ok": True, "detail": "ok", "critical": True},
        },
    }
    assert (answer.status, answer.getheader("location")) == (404, None)
    logged = {
        entry["check"]: entry["error"]
        for entry in map(json.loads, exited.stdout.splitlines())
        if entry["message"] == "readiness check failed"
    }
    print(json.dumps(logged, indent=2))
    assert 'database "no_such_database" does not exist' in logged["database"]
    assert f"127.0.0.1:{closed}" in logged["redis"]
    assert PASSWORD not in exited.stdout + exited.stderr


def _ask(connection: http.client.HTTPConnection, path: str) -> http.client.HTTPResponse:
    connection.request("GET", path)
    response = connection.getresponse()
    response.read()
    return response


def _closed_by_server(sock: socket.socket) -> bool:
    """Reads whatever is waiting (the rest of a response) and tells whether EOF came."""
    sock.setblocking(False)
    try:
        while sock.recv(65536):
            pass
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    finally:
        sock.setblocking(True)
    return True


def test_keep_alive_clients_lose_nothing_across_sigterm(servers: BackingServices) -> None:
    delay = 2.0
    env = {
        **servers.environment(),
        **SERVICE_ENV,
        "SHUTDOWN_DELAY_SECONDS": str(delay),
    }
    with running_service(python_command(SERVICE_CODE), env) as service:
        idle = http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)
        assert _ask(idle, "/version").getheader("connection") is None
        silent = socket.create_connection(("127.0.0.1", service.port))
        silent.sendall(b"GET /version HTTP/1.1\r\nHost: t\r\n\r\n")
        assert b"200 OK" in silent.recv(65536)

        signalled = threading.Event()
        lost: list[str] = []
        answered_while_draining: list[int] = []

        def client() -> None:
            """Sends back to back on one connection until told to close it."""
            connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)
            after_signal = 0
            while True:
                try:
                    response = _ask(connection, "/version")
                except (OSError, http.client.HTTPException) as error:
                    lost.append(repr(error))
                    return
                if response.status != 200:
                    lost.append(f"status {response.status}")
                after_signal += signalled.is_set()
                if response.getheader("connection") == "close":
                    answered_while_draining.append(after_signal)
                    return

        clients = [threading.Thread(target=client) for _ in range(4)]
        for thread in clients:
            thread.start()
        time.sleep(0.5)
        signalled.set()
        service.process.send_signal(signal.SIGTERM)
        for thread in clients:
            thread.join(timeout=10)
        assert lost == []
        assert len(answered_while_draining) == len(clients)

        time.sleep(delay / 2)
        assert not _closed_by_server(silent)
        reused = _ask(idle, "/version")  # idle through the signal, still open mid-delay
        assert reused.status == 200
        assert reused.getheader("connection") == "close"
        assert wait_until(lambda: _closed_by_server(silent), timeout=delay + 5)
        service.wait(timeout=15)
        assert service.process.returncode == 0
        silent.close()
