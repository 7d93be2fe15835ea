import asyncio
import threading

import httpx

from meridian.platform.v1.service_info_pb2 import ServiceInfo
from meridian_chassis.checks import Check
from meridian_chassis.http import create_app
from meridian_chassis.lifecycle import Lifecycle
from meridian_chassis.readiness import ReadinessMonitor


class CountingProbe:
    """Answers after a short wait, like a round trip to a server, and counts its calls."""

    def __init__(self, delay: float = 0.05) -> None:
        self.calls = 0
        self.delay = delay
        self.failing = False

    async def __call__(self) -> None:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.failing:
            raise ConnectionRefusedError("connection refused")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_concurrent_ready_requests_share_one_round_of_checks() -> None:
    database, cache = CountingProbe(), CountingProbe()
    readiness = ReadinessMonitor(
        [Check("database", database), Check("redis", cache)], timeout=1, max_age=0
    )
    app = create_app(ServiceInfo(name="t"), Lifecycle(), readiness)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        while (await client.get("/health/startup")).status_code != 200:
            await asyncio.sleep(0.01)
        assert (database.calls, cache.calls) == (1, 1)  # the start-up round
        replies = await asyncio.gather(*(client.get("/health/ready") for _ in range(50)))
    assert {reply.status_code for reply in replies} == {200}
    assert (database.calls, cache.calls) == (2, 2)


async def test_checks_made_by_a_loader_are_made_once_off_the_event_loop() -> None:
    made_in: list[str] = []
    probe = CountingProbe(delay=0)

    def load() -> list[Check]:
        made_in.append(threading.current_thread().name)
        return [Check("database", probe)]

    readiness = ReadinessMonitor(load, timeout=1, max_age=0)
    await readiness.first_round()
    await readiness.results()
    assert len(made_in) == 1
    assert made_in[0] != threading.main_thread().name
    assert probe.calls == 2


async def test_probes_arriving_together_trigger_one_check() -> None:
    probe = CountingProbe()
    readiness = ReadinessMonitor([Check("database", probe)], timeout=1, max_age=10)
    results = await asyncio.gather(*(readiness.results() for _ in range(100)))
    assert probe.calls == 1
    assert readiness.rounds == 1
    assert all(result[0].ok for result in results)


async def test_result_is_reused_for_max_age_then_checked_again() -> None:
    probe, clock = CountingProbe(delay=0), Clock()
    readiness = ReadinessMonitor([Check("redis", probe)], timeout=1, max_age=2, clock=clock)
    await readiness.results()
    clock.now += 1.9
    await readiness.results()
    assert probe.calls == 1
    probe.failing = True
    clock.now += 0.1
    (result,) = await readiness.results()
    assert probe.calls == 2
    assert not result.ok
    assert "ConnectionRefusedError" in result.detail


async def test_a_probe_that_gives_up_does_not_cancel_the_shared_check() -> None:
    probe = CountingProbe(delay=0.2)
    readiness = ReadinessMonitor([Check("kafka", probe)], timeout=1, max_age=10)
    impatient = asyncio.create_task(readiness.results())
    await asyncio.sleep(0.05)
    impatient.cancel()
    (result,) = await readiness.results()
    assert result.ok
    assert probe.calls == 1


async def test_zero_max_age_checks_on_every_probe_but_still_one_at_a_time() -> None:
    probe = CountingProbe()
    readiness = ReadinessMonitor([Check("database", probe)], timeout=1, max_age=0)
    await asyncio.gather(*(readiness.results() for _ in range(10)))
    await readiness.results()
    assert probe.calls == 2
