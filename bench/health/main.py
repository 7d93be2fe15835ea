"""Benchmark the health endpoints of a real service against real backing servers.

Starts PostgreSQL (logging every connection), Redis, a Kafka-protocol broker behind a
connection-counting relay, and the current-account service on free ports; measures
how soon the service accepts a connection after exec; then loads /health/live,
/health/ready and /health/startup in turn and prints requests per second, latency
percentiles, status codes and the connections each backing server received.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.health.load import LoadResult, generate_load
from meridian_testing.process import child_environment
from meridian_testing.relay import CountingRelay, counting_relay
from meridian_testing.servers import KafkaServer, PostgresServer, RedisServer, Server, free_port

ENDPOINTS = ("/health/live", "/health/ready", "/health/startup")
SERVICE_CODE = "from current_account.main import main; main()"


@dataclass
class Backing:
    database: PostgresServer
    cache: RedisServer
    kafka: KafkaServer
    relay: CountingRelay

    def environment(self) -> dict[str, str]:
        return {
            "DATABASE_URL": self.database.url(),
            "REDIS_URL": self.cache.url(),
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers(),
        }

    def connections(self) -> dict[str, int]:
        """Connections each server has accepted so far, as the server (or relay) counts them."""
        return {
            "postgres": self.database.connections_received(),
            "redis": self.cache.connections_received(),
            "kafka": self.relay.accepted,
        }


@contextlib.contextmanager
def backing_servers(root: Path) -> Iterator[Backing]:
    database = PostgresServer(free_port(), root / "postgresql", {"log_connections": "on"})
    cache = RedisServer(free_port(), root / "redis")
    relay_port = free_port()
    broker = KafkaServer(free_port(), root / "kafka", advertised_port=relay_port)
    servers: tuple[Server, ...] = (database, cache, broker)
    try:
        for server in servers:
            server.workdir.mkdir(parents=True)
            server.prepare()
            server.start()
        with counting_relay(relay_port, broker.port) as relay:
            yield Backing(database, cache, broker, relay)
    finally:
        for server in reversed(servers):
            server.stop()


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.05):
        return True
    return False


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def _time_until(predicate: Callable[[], bool], started: float, timeout: float) -> float:
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.002)
    raise TimeoutError(f"not reached within {timeout}s")


@dataclass(frozen=True)
class StartupTimes:
    accepts: float
    answers: float
    started: float
    ready: float


def start_service(
    env: dict[str, str], port: int, log: Path
) -> tuple[subprocess.Popen[bytes], StartupTimes]:
    base = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        started = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-c", SERVICE_CODE],
            env=child_environment({**env, "PORT": str(port), "HOST": "127.0.0.1"}),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        times = StartupTimes(
            accepts=_time_until(lambda: _accepts(port), started, 60),
            answers=_time_until(lambda: _status(f"{base}/health/startup") is not None, started, 60),
            started=_time_until(lambda: _status(f"{base}/health/startup") == 200, started, 60),
            ready=_time_until(lambda: _status(f"{base}/health/ready") == 200, started, 60),
        )
    except TimeoutError:
        process.kill()
        process.wait()
        raise SystemExit(f"the service did not start; its log:\n{log.read_text()}") from None
    return process, times


def _row(path: str, result: LoadResult, opened: dict[str, int]) -> str:
    statuses = ",".join(f"{code}x{count}" for code, count in sorted(result.statuses.items()))
    errors = ",".join(f"{name}x{count}" for name, count in result.errors.items()) or "-"
    return (
        f"{path:<16} {result.rate:>9.0f} {result.percentile(0.5) * 1000:>8.1f}"
        f" {result.percentile(0.99) * 1000:>8.1f} {opened['postgres']:>9} {opened['redis']:>6}"
        f" {opened['kafka']:>6}  {statuses} errors={errors}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections")
    parser.add_argument("--seconds", type=float, default=10.0, help="load per endpoint")
    args = parser.parse_args(argv)
    if args.connections < 1 or args.seconds <= 0:
        parser.error("--connections must be >= 1 and --seconds > 0")

    root = Path(tempfile.mkdtemp(prefix="meridian-bench-"))
    root.chmod(0o755)  # the unprivileged postgres user must reach its directory
    try:
        with backing_servers(root) as backing:
            port = free_port()
            process, times = start_service(backing.environment(), port, root / "service.log")
            try:
                print(
                    f"start-up after exec: accepts a connection {times.accepts * 1000:.0f} ms, "
                    f"first HTTP answer {times.answers * 1000:.0f} ms, /health/startup 200 "
                    f"{times.started * 1000:.0f} ms, /health/ready 200 {times.ready * 1000:.0f} ms"
                )
                print(
                    f"load: {args.connections} keep-alive connections, {args.seconds:g} s per "
                    "endpoint; connections = opened by the backing servers during the load"
                )
                print(
                    f"{'endpoint':<16} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
                    f"{'postgres':>9} {'redis':>6} {'kafka':>6}  statuses"
                )
                for path in ENDPOINTS:
                    before = backing.connections()
                    result = asyncio.run(
                        generate_load("127.0.0.1", port, path, args.connections, args.seconds)
                    )
                    after = backing.connections()
                    opened = {name: after[name] - before[name] for name in after}
                    print(_row(path, result, opened), flush=True)
            finally:
                process.terminate()
                process.wait(30)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
