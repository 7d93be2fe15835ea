"""TLS and authentication to real PostgreSQL and Redis servers with test-made certificates."""

from __future__ import annotations

import shutil
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from meridian_chassis.checks import Check, CheckResult, run_checks
from meridian_chassis.clients import Clients
from meridian_chassis.clients.database import DatabaseClient
from meridian_chassis.config import Settings, load_settings
from meridian_chassis.readiness import ReadinessMonitor
from meridian_chassis.transport import kafka_options
from meridian_testing.process import python_command, running_service
from meridian_testing.servers import KafkaServer, PostgresServer, RedisServer, free_port
from meridian_testing.tls import KeyPair, issue, make_ca

REDIS_USER, REDIS_PASSWORD = "ledger", "s3cret-for-tests"


def checks_for(settings: Settings, needs: frozenset[str]) -> list[Check]:
    return Clients("tls-probe", settings, needs).load()


@dataclass
class TlsServers:
    ca: KeyPair
    other_ca: KeyPair
    client: KeyPair
    database: PostgresServer
    cache: RedisServer

    def environment(self, host: str = "localhost", ca: Path | None = None) -> dict[str, str]:
        ca_file = str(ca or self.ca.cert)
        return {
            "DATABASE_URL": f"postgresql://meridian@{host}:{self.database.port}/postgres",
            "DATABASE_SSLMODE": "verify-full",
            "DATABASE_SSL_CA_FILE": ca_file,
            "REDIS_URL": f"rediss://{host}:{self.cache.port}/0",
            "REDIS_SSL_CA_FILE": ca_file,
            "REDIS_USERNAME": REDIS_USER,
            "REDIS_PASSWORD": REDIS_PASSWORD,
        }


@pytest.fixture(scope="module")
def servers() -> Iterator[TlsServers]:
    root = Path(tempfile.mkdtemp(prefix="meridian-tls-"))
    root.chmod(0o755)  # the unprivileged postgres user must reach its directory
    pki = root / "pki"
    ca, other_ca = make_ca(pki, "meridian-test-ca"), make_ca(pki, "someone-else-ca")
    # Issued for the name `localhost` only: connecting to 127.0.0.1 is a name mismatch.
    server = issue(ca, pki, "server", dns_names=("localhost",))
    client = issue(ca, pki, "client")
    database = PostgresServer(free_port(), root / "postgresql")
    cache = RedisServer(free_port(), root / "redis")
    database.workdir.mkdir(parents=True)
    cache.workdir.mkdir(parents=True)
    try:
        database.prepare()
        database.enable_tls(server.cert, server.key)
        cache.enable_tls(server.cert, server.key, ca.cert)
        cache.add_user(REDIS_USER, REDIS_PASSWORD)
        database.start()
        cache.start()
        yield TlsServers(ca, other_ca, client, database, cache)
    finally:
        database.stop()
        cache.stop()
        shutil.rmtree(root, ignore_errors=True)


async def _check(env: dict[str, str]) -> dict[str, CheckResult]:
    needs = frozenset({"database", "redis"})
    checks = checks_for(load_settings(env, needs), needs)
    try:
        return {result.name: result for result in await run_checks(checks, 5)}
    finally:
        for check in checks:
            await check.close()


async def test_verify_full_connects_to_both(servers: TlsServers) -> None:
    results = await _check(servers.environment())
    assert results["database"].ok, results["database"].detail
    assert results["redis"].ok, results["redis"].detail


async def test_the_database_refuses_plain_connections(servers: TlsServers) -> None:
    env = {**servers.environment(), "DATABASE_SSLMODE": "disable"}
    del env["DATABASE_SSL_CA_FILE"]
    results = await _check(env)
    assert not results["database"].ok
    assert "no encryption" in results["database"].detail


async def test_a_server_signed_by_another_ca_is_refused(servers: TlsServers) -> None:
    results = await _check(servers.environment(ca=servers.other_ca.cert))
    for name in ("database", "redis"):
        assert not results[name].ok
        assert "certificate verify failed" in results[name].detail
        assert "self-signed certificate in certificate chain" in results[name].detail or (
            "unable to get local issuer certificate" in results[name].detail
        )


async def test_a_certificate_for_another_name_is_refused(servers: TlsServers) -> None:
    results = await _check(servers.environment(host="127.0.0.1"))
    for name in ("database", "redis"):
        assert not results[name].ok
        assert "IP address mismatch, certificate is not valid for '127.0.0.1'" in (
            results[name].detail
        )


async def test_verify_ca_accepts_the_name_mismatch_but_not_another_ca(servers: TlsServers) -> None:
    env = {**servers.environment(host="127.0.0.1"), "DATABASE_SSLMODE": "verify-ca"}
    assert (await _check(env))["database"].ok
    env["DATABASE_SSL_CA_FILE"] = str(servers.other_ca.cert)
    assert not (await _check(env))["database"].ok


async def test_a_client_certificate_is_sent_when_configured(servers: TlsServers) -> None:
    env = {
        **servers.environment(),
        "DATABASE_SSL_CERT_FILE": str(servers.client.cert),
        "DATABASE_SSL_KEY_FILE": str(servers.client.key),
    }
    assert (await _check(env))["database"].ok


async def test_redis_refuses_a_wrong_password(servers: TlsServers) -> None:
    results = await _check({**servers.environment(), "REDIS_PASSWORD": "wrong"})
    assert not results["redis"].ok
    assert "AuthenticationError" in results["redis"].detail


async def test_connections_are_reused_between_checks(servers: TlsServers) -> None:
    needs = frozenset({"database", "redis"})
    clients = Clients("tls-probe", load_settings(servers.environment(), needs), needs)
    readiness = ReadinessMonitor(clients.load, timeout=5, max_age=0)
    try:
        first = await readiness.results()
        pool = clients.get(DatabaseClient).pool
        for _ in range(3):
            assert all(result.ok for result in await readiness.results())
        # One connection, opened by the first check and reused by the others.
        assert pool.get_size() == 1
        assert clients.get(DatabaseClient).pool is pool
        assert all(result.ok for result in first)
    finally:
        await readiness.close()


def test_a_service_is_ready_over_tls(servers: TlsServers) -> None:
    code = (
        "from meridian_chassis import ServiceSpec, run; "
        "run(ServiceSpec('tls-probe', frozenset({'database', 'redis'})))"
    )
    with running_service(python_command(code), servers.environment()) as service:
        reply = service.get("/health/ready")
    assert reply.status == 200, reply.text


def test_kafka_ssl_and_scram_options(servers: TlsServers) -> None:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "kafka:9093",
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SSL_CA_FILE": str(servers.ca.cert),
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": "ledger",
        "KAFKA_SASL_PASSWORD": "secret",
    }
    options = kafka_options(load_settings(env, frozenset({"kafka"})).security.kafka)
    context = options.pop("ssl_context")
    assert options == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "ledger",
        "sasl_plain_password": "secret",
    }
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert [cert["subject"] for cert in context.get_ca_certs()] == [
        ((("commonName", "meridian-test-ca"),),)
    ]


async def test_kafka_over_ssl_fails_against_a_plain_text_broker(
    servers: TlsServers, tmp_path: Path
) -> None:
    # tansu (the test broker) does not serve TLS, so only the failing side is testable.
    broker = KafkaServer(free_port(), tmp_path)
    broker.start()
    try:
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers(),
            "KAFKA_SECURITY_PROTOCOL": "SSL",
            "KAFKA_SSL_CA_FILE": str(servers.ca.cert),
        }
        needs = frozenset({"kafka"})
        checks = checks_for(load_settings(env, needs), needs)
        (result,) = await run_checks(checks, 3)
        await checks[0].close()
    finally:
        broker.stop()
    assert not result.ok
