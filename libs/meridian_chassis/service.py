"""Serve a Meridian service over HTTP and drain it on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import math
import signal
import socket
import threading
from collections.abc import Sequence
from types import FrameType

import uvicorn
from prometheus_client import CollectorRegistry
from starlette.routing import BaseRoute

from meridian.platform.v1.service_info_pb2 import ServiceInfo
from meridian_chassis.clients import Clients
from meridian_chassis.config import Settings
from meridian_chassis.edge import edge_protocol, h11_buffer_limit
from meridian_chassis.http import create_app
from meridian_chassis.lifecycle import Lifecycle, Phase
from meridian_chassis.logs import configure_logging
from meridian_chassis.readiness import ReadinessMonitor
from meridian_chassis.redaction import Redactor, redact_uncaught_exceptions
from meridian_chassis.reload import SourceWatcher, keep_listener, package_dirs, reexec
from meridian_chassis.spec import ServiceSpec

log = logging.getLogger("meridian.service")

# How long shutdown waits for accepted connections to send their first request; any
# still silent then are closed (with nothing unread, so the client sees a clean close).
FIRST_REQUEST_WAIT_SECONDS = 0.5


class _DrainingServer(uvicorn.Server):
    """On SIGTERM, fail readiness at once, keep serving for the drain delay, then stop.

    The delay gives load balancers time to notice the failing readiness before the
    listener closes. Meanwhile every response carries `Connection: close` and idle
    keep-alive connections stay open; when the delay ends uvicorn closes the idle ones
    and lets in-flight requests finish within the grace period.
    """

    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle, delay: float) -> None:
        super().__init__(config)
        self.lifecycle = lifecycle
        self.delay = delay

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.lifecycle.phase is Phase.DRAINING:
            super().handle_exit(sig, frame)
            return
        self.lifecycle.drain()
        log.info("draining", extra={"signal": signal.Signals(sig).name, "delay_s": self.delay})
        timer = threading.Timer(self.delay, super().handle_exit, args=(sig, frame))
        timer.daemon = True
        timer.start()

    def stop_for_reload(self) -> None:
        # Not through handle_exit: uvicorn would re-raise that signal after shutdown.
        self.lifecycle.drain()
        self.should_exit = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await self._stop_accepting()
        await super().shutdown(sockets)

    async def _stop_accepting(self) -> None:
        """Stops accepting, then lets what was accepted deliver its first request.

        uvicorn's shutdown closes the server, and asyncio then drops, unread, a connection
        it accepted but had not yet handed to a protocol; it closes every connection still
        waiting for its first request. Closing a connection with an unread request resets
        it. So the listener first only leaves the event loop (under a reload, later
        connections wait in the kept listener's backlog for the re-executed process), and
        each accepted connection gets a moment to send its request, which the shutdown
        then completes with `Connection: close`.
        """
        loop = asyncio.get_running_loop()
        for server in getattr(self, "servers", []):
            for listener in server.sockets:
                loop.remove_reader(listener.fileno())
        # A connection accepted just before reaches connection_made two turns later.
        for _ in range(3):
            await asyncio.sleep(0)
        deadline = loop.time() + FIRST_REQUEST_WAIT_SECONDS
        while loop.time() < deadline and any(
            getattr(connection, "cycle", None) is None
            for connection in self.server_state.connections
        ):
            await asyncio.sleep(0.01)


def serve(
    spec: ServiceSpec,
    settings: Settings,
    info: ServiceInfo,
    listener: socket.socket,
    clients: Clients,
    routes: Sequence[BaseRoute],
) -> None:
    redact = Redactor(settings.secrets())
    configure_logging(spec.name, settings.log_level, redact)
    redact_uncaught_exceptions(redact)
    lifecycle = Lifecycle()

    # The clients' libraries take most of the start-up time: loaded while serving. The
    # checks' `close` closes the clients, after the last request (lifespan shutdown).
    readiness = ReadinessMonitor(
        clients.load,
        timeout=settings.readiness_timeout_seconds,
        max_age=settings.readiness_cache_seconds,
    )
    registry = CollectorRegistry()
    app = create_app(
        info=info,
        lifecycle=lifecycle,
        readiness=readiness,
        routes=routes,
        access_log_probes=settings.access_log_probes,
        registry=registry,
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        http=edge_protocol(settings.http, registry),
        h11_max_incomplete_event_size=h11_buffer_limit(settings.http),
        # The edge keeps its own (fractional) keep-alive deadline; uvicorn's is a backstop.
        timeout_keep_alive=math.ceil(settings.http.keepalive_timeout_seconds),
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_seconds),
    )
    server = _DrainingServer(config, lifecycle, settings.shutdown_delay_seconds)
    # uvicorn re-raises the signal that stopped it once it has shut down; with these
    # handlers that ends in a clean exit 0 instead of death by signal.
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, lambda *_: None)
    watcher, kept_listener = None, None
    if settings.reload:
        kept_listener = keep_listener(listener)
        packages = ["meridian_chassis", spec.package]
        watcher = SourceWatcher(package_dirs(packages), server.stop_for_reload)
        watcher.start()
    log.info(
        "starting",
        extra={
            "port": settings.port,
            "dependencies": sorted(spec.dependencies),
            "optional": sorted(spec.optional),
        },
    )
    server.run(sockets=[listener])
    if watcher is not None and watcher.changed.is_set():
        log.info("reloading")
        reexec(kept_listener)
    log.info("stopped")
