"""Readiness answered from one shared check: single-flight, reused for a short while.

However many probes arrive, at most one round of checks runs at a time and its result
answers every probe that came while it ran and, for `max_age` seconds after it
started, every probe after it. A backing-service outage therefore shows within
`max_age` plus the check timeout, and probing never multiplies connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence

from meridian_chassis.checks import Check, CheckResult, run_checks

ChecksLoader = Callable[[], Sequence[Check]]
RoundObserver = Callable[[Sequence[CheckResult]], None]
log = logging.getLogger("meridian.readiness")


class ReadinessMonitor:
    """`checks` may be a function that makes them; the first round calls it in a thread,
    so slow imports of client libraries do not hold up the event loop."""

    def __init__(
        self,
        checks: Sequence[Check] | ChecksLoader,
        timeout: float,
        max_age: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load: ChecksLoader | None = checks if callable(checks) else None
        self.checks: tuple[Check, ...] = () if callable(checks) else tuple(checks)
        self.timeout = timeout
        self.max_age = max_age
        self.clock = clock
        self.rounds = 0
        self._latest: list[CheckResult] | None = None
        self._latest_started = 0.0
        self._in_flight: asyncio.Task[list[CheckResult]] | None = None
        # Called with each round's results (e.g. to set the dependency metrics).
        self.observers: list[RoundObserver] = []

    async def results(self) -> list[CheckResult]:
        if self._latest is not None and self.clock() - self._latest_started < self.max_age:
            return self._latest
        if self._in_flight is None:
            self._in_flight = asyncio.create_task(self._check())
        # Shielded: a probe that gives up must not cancel the round others wait for.
        return await asyncio.shield(self._in_flight)

    async def first_round(self) -> list[CheckResult]:
        """The first round (started now if none is running), whatever its age."""
        if self._latest is not None:
            return self._latest
        if self._in_flight is None:
            self._in_flight = asyncio.create_task(self._check())
        return await asyncio.shield(self._in_flight)

    async def _check(self) -> list[CheckResult]:
        started = self.clock()
        try:
            if self._load is not None:
                self.checks = tuple(await asyncio.to_thread(self._load))
                self._load = None
            results = await run_checks(self.checks, self.timeout)
            self._log_changes(results)
            for observe in self.observers:
                observe(results)
            self.rounds += 1
            self._latest, self._latest_started = results, started
            return results
        finally:
            self._in_flight = None

    def _log_changes(self, results: Sequence[CheckResult]) -> None:
        """Each failure (and each change of its error) once, and each recovery.

        /health/ready says only which check failed; why is here, in the service's log,
        where `make run` and Tilt show it.
        """
        before = {result.name: result for result in self._latest or ()}
        for result in results:
            previous = before.get(result.name)
            # An optional dependency's failure leaves the service ready: said differently.
            failed, passed = (
                ("readiness check failed", "readiness check passed")
                if result.critical
                else ("dependency degraded, serving without it", "dependency recovered")
            )
            extra = {"check": result.name, "critical": result.critical}
            if not result.ok and (previous is None or previous.detail != result.detail):
                log.warning(failed, extra={**extra, "error": result.detail})
            elif result.ok and previous is not None and not previous.ok:
                log.info(passed, extra=extra)

    async def close(self) -> None:
        if self._in_flight is not None:
            self._in_flight.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._in_flight
        for check in self.checks:
            with contextlib.suppress(Exception):
                await check.close()
