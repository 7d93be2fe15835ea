"""The HTTP surface every Meridian service shares."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

from google.protobuf.json_format import MessageToDict
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, Router

from meridian.platform.v1.service_info_pb2 import ServiceInfo
from meridian_chassis.clients import DependencyUnavailableError
from meridian_chassis.draining import CloseConnectionsWhileDraining
from meridian_chassis.lifecycle import Lifecycle, Phase
from meridian_chassis.observability import (
    DependencyMetrics,
    ObservabilityMiddleware,
    RequestMetrics,
)
from meridian_chassis.readiness import ReadinessMonitor


def create_app(
    info: ServiceInfo,
    lifecycle: Lifecycle,
    readiness: ReadinessMonitor,
    routes: Sequence[BaseRoute] = (),
    access_log_probes: bool = False,
    registry: CollectorRegistry | None = None,
) -> Starlette:
    """`registry` is what /metrics serves (a new one unless the server counts there too)."""
    registry = registry or CollectorRegistry()
    metrics = RequestMetrics(registry)
    readiness.observers.append(DependencyMetrics(registry).update)
    version_body = MessageToDict(info, preserving_proto_field_name=True)

    async def live(_: Request) -> Response:
        # Liveness never looks at dependencies: a database outage must not restart pods.
        return JSONResponse({"status": "alive"})

    async def startup(_: Request) -> Response:
        started = lifecycle.phase is not Phase.STARTING
        return JSONResponse({"status": lifecycle.phase.value}, status_code=200 if started else 503)

    async def ready(_: Request) -> Response:
        if lifecycle.phase is not Phase.SERVING:
            return JSONResponse({"status": lifecycle.phase.value, "checks": {}}, status_code=503)
        results = await readiness.results()
        # Only critical checks decide readiness; a failing optional one leaves the
        # service in rotation, serving without it ("degraded").
        healthy = all(result.ok for result in results if result.critical)
        degraded = not all(result.ok for result in results)
        body = {
            "status": ("degraded" if degraded else "ready") if healthy else "not ready",
            "checks": {
                r.name: {"ok": r.ok, "detail": r.outcome, "critical": r.critical} for r in results
            },
        }
        return JSONResponse(body, status_code=200 if healthy else 503)

    async def unavailable(_: Request, error: Exception) -> Response:
        # A client used before it is open or after it closed: the caller may retry.
        return JSONResponse({"error": str(error)}, status_code=503)

    async def version(_: Request) -> Response:
        return JSONResponse(version_body)

    async def metrics_endpoint(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    all_routes: list[BaseRoute] = [
        Route("/health/live", live),
        Route("/health/ready", ready),
        Route("/health/startup", startup),
        Route("/metrics", metrics_endpoint),
        Route("/version", version),
        *routes,
    ]
    router = Router(all_routes)

    async def initialize() -> None:
        await readiness.first_round()
        lifecycle.started()

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        # Client libraries load and backing-service connections open in the background:
        # the server answers meanwhile (/health/startup 503 until the first round of
        # checks is done, whatever its outcome: an outage is readiness' business).
        starting = asyncio.create_task(initialize())
        try:
            yield
        finally:
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
            await readiness.close()

    app = Starlette(
        routes=all_routes,
        lifespan=lifespan,
        exception_handlers={DependencyUnavailableError: unavailable},
        middleware=[
            Middleware(
                ObservabilityMiddleware,
                router=router,
                metrics=metrics,
                log_probes=access_log_probes,
            ),
            Middleware(CloseConnectionsWhileDraining, lifecycle=lifecycle),
        ],
    )
    # A redirect to the slash-less path would be built from the client's Host header.
    app.router.redirect_slashes = False
    return app
