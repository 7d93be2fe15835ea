"""Readiness traffic opens no Kafka connection after start-up: the broker connection the
checks reuse is opened by the first round (a real broker behind a counting relay)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from meridian_testing.process import python_command, running_service, wait_until
from meridian_testing.relay import CountingRelay, counting_relay
from meridian_testing.servers import KafkaServer, free_port

SERVICE_CODE = (
    "from meridian_chassis import ServiceSpec, run; "
    "run(ServiceSpec('kafka-probe', frozenset({'kafka'})))"
)


@pytest.fixture()
def relay(tmp_path: Path) -> Iterator[CountingRelay]:
    relay_port = free_port()
    broker = KafkaServer(free_port(), tmp_path / "kafka", advertised_port=relay_port)
    broker.workdir.mkdir(parents=True)
    broker.prepare()
    broker.start()
    try:
        with counting_relay(relay_port, broker.port) as counting:
            yield counting
    finally:
        broker.stop()


def test_ready_load_after_start_up_opens_no_kafka_connection(relay: CountingRelay) -> None:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{relay.listen_port}",
        "READINESS_CACHE_SECONDS": "0.2",
    }
    with running_service(python_command(SERVICE_CODE), env) as service:
        assert wait_until(lambda: service.get("/health/ready").status == 200, timeout=30)
        opened = relay.accepted
        assert opened >= 1
        # Several rounds of checks (at most 0.2 s apart) under concurrent probes.
        deadline = time.monotonic() + 2.0
        statuses = set()
        with ThreadPoolExecutor(4) as pool:
            while time.monotonic() < deadline:
                replies = pool.map(lambda _: service.get("/health/ready"), range(8))
                statuses |= {reply.status for reply in replies}
                time.sleep(0.05)
        assert statuses == {200}
        assert relay.accepted == opened, f"{relay.accepted - opened} new Kafka connections"
