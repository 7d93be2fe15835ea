"""Request metrics (Prometheus) and one JSON access-log line per request."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.routing import Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from meridian_chassis.checks import CheckResult

access_log = logging.getLogger("meridian.access")
PROBE_PATHS = frozenset({"/health/live", "/health/ready", "/health/startup"})


class RequestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests served, by method, route and status code.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time to serve an HTTP request, by method and route.",
            ["method", "route"],
            registry=registry,
        )


class DependencyMetrics:
    """Each backing service's state as the latest readiness round saw it: an optional
    one that is down shows here while the service stays ready."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.up = Gauge(
            "meridian_dependency_up",
            "1 if the backing service passed the latest readiness check, else 0; critical "
            "is false for the needs the service serves without (degraded).",
            ["dependency", "critical"],
            registry=registry,
        )

    def update(self, results: Sequence[CheckResult]) -> None:
        for result in results:
            self.up.labels(result.name, str(result.critical).lower()).set(int(result.ok))


def _route_template(router: Router, scope: Scope) -> str:
    # Label by route template, not raw path, so metric cardinality stays bounded.
    for route in router.routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return str(getattr(route, "path", "unmatched"))
    return "unmatched"


class ObservabilityMiddleware:
    def __init__(
        self, app: ASGIApp, router: Router, metrics: RequestMetrics, log_probes: bool = False
    ) -> None:
        self.app = app
        self.router = router
        self.metrics = metrics
        # Probes arrive every few seconds from every prober; they are counted, not logged.
        self.log_probes = log_probes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_template(self.router, scope)
            method = str(scope["method"])
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(elapsed)
            if self.log_probes or scope["path"] not in PROBE_PATHS:
                self._log(scope, method, route, status, elapsed)

    @staticmethod
    def _log(scope: Scope, method: str, route: str, status: int, elapsed: float) -> None:
        access_log.info(
            "request",
            extra={
                "method": method,
                "path": scope["path"],
                "route": route,
                "status": status,
                "duration_ms": round(elapsed * 1000, 3),
            },
        )
