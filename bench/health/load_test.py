"""The load generator and the counting relay against a real service process."""

import asyncio
from collections.abc import Iterator

import pytest

from bench.health.load import LoadResult, generate_load
from meridian_testing.process import RunningService, python_command, running_service
from meridian_testing.relay import counting_relay
from meridian_testing.servers import free_port

SERVICE_CODE = "from meridian_chassis import ServiceSpec, run; run(ServiceSpec('bench-probe'))"


@pytest.fixture(scope="module")
def service() -> Iterator[RunningService]:
    # Access logs on: the harness drains them, so a service under load keeps answering.
    with running_service(python_command(SERVICE_CODE), {}) as running:
        yield running


def test_load_over_keep_alive_connections_counts_every_answer(service: RunningService) -> None:
    result = asyncio.run(generate_load("127.0.0.1", service.port, "/health/live", 4, 1.0))
    assert result.requests > 20
    assert result.statuses == {200: result.requests}
    assert not result.errors
    assert 0 < result.percentile(0.5) <= result.percentile(0.99) <= max(result.latencies)


def test_statuses_other_than_200_are_counted(service: RunningService) -> None:
    result = asyncio.run(generate_load("127.0.0.1", service.port, "/no-such-page", 2, 0.5))
    assert set(result.statuses) == {404}


def test_an_unreachable_server_is_reported_as_errors() -> None:
    result = asyncio.run(generate_load("127.0.0.1", free_port(), "/", 2, 0.3))
    assert result.requests == 0
    assert set(result.errors) == {"ConnectionRefusedError"}


def test_percentile_is_nearest_rank() -> None:
    result = LoadResult(seconds=1, latencies=[0.004, 0.001, 0.003, 0.002])
    assert result.percentile(0.5) == 0.002
    assert result.percentile(0.99) == 0.004
    assert LoadResult(seconds=1).percentile(0.99) == 0


def test_the_relay_counts_the_connections_opened_through_it(service: RunningService) -> None:
    with counting_relay(free_port(), service.port) as relay:
        result = asyncio.run(generate_load("127.0.0.1", relay.listen_port, "/version", 3, 0.5))
        assert relay.accepted == 3  # keep-alive: one connection each, however many requests
    assert result.requests > 3
    assert result.statuses == {200: result.requests}
