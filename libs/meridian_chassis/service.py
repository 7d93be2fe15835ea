"""Start a Meridian service: validate settings, serve HTTP, drain on SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType

import uvicorn
from starlette.routing import BaseRoute

from meridian.platform.v1.service_info_pb2 import ServiceInfo
from meridian_chassis.buildinfo import service_info
from meridian_chassis.checks import checks_for
from meridian_chassis.config import ConfigError, Settings, load_settings
from meridian_chassis.declaration import load_packaged_declaration
from meridian_chassis.http import create_app
from meridian_chassis.lifecycle import Lifecycle, Phase
from meridian_chassis.logs import configure_logging
from meridian_chassis.reload import SourceWatcher, package_dirs, reexec

log = logging.getLogger("meridian.service")
CONFIG_ERROR_EXIT_CODE = 2


@dataclass(frozen=True)
class ServiceSpec:
    """What a service tells the chassis about itself."""

    name: str
    dependencies: frozenset[str] = frozenset()
    routes: Sequence[BaseRoute] = field(default_factory=tuple)


def declared_service(package: str, routes: Sequence[BaseRoute] = ()) -> ServiceSpec:
    """The ServiceSpec that services/<package>/service.yaml declares."""
    declaration = load_packaged_declaration(package)
    return ServiceSpec(name=declaration.name, dependencies=declaration.needs, routes=tuple(routes))


class _DrainingServer(uvicorn.Server):
    """On SIGTERM, fail readiness at once, keep serving for the drain delay, then stop.

    The delay gives load balancers time to notice the failing readiness before the
    listener closes; uvicorn then lets in-flight requests finish within the grace period.
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


def serve(spec: ServiceSpec, settings: Settings, info: ServiceInfo) -> None:
    lifecycle = Lifecycle()
    app = create_app(
        info=info,
        lifecycle=lifecycle,
        checks=checks_for(settings),
        check_timeout=settings.readiness_timeout_seconds,
        routes=spec.routes,
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=int(round(settings.shutdown_grace_seconds)) or 1,
    )
    server = _DrainingServer(config, lifecycle, settings.shutdown_delay_seconds)
    # uvicorn re-raises the signal that stopped it once it has shut down; with these
    # handlers that ends in a clean exit 0 instead of death by signal.
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, lambda *_: None)
    watcher = None
    if settings.reload:
        # Convention: a service's package is its name with underscores.
        packages = ["meridian_chassis", spec.name.replace("-", "_")]
        watcher = SourceWatcher(package_dirs(packages), server.stop_for_reload)
        watcher.start()
    log.info("starting", extra={"port": settings.port, "dependencies": sorted(spec.dependencies)})
    server.run()
    if watcher is not None and watcher.changed.is_set():
        log.info("reloading")
        reexec()
    log.info("stopped")


def run(spec: ServiceSpec, environ: Mapping[str, str] | None = None) -> None:
    """Entry point for a service's `main`: exits non-zero on bad configuration."""
    env = os.environ if environ is None else environ
    try:
        settings = load_settings(env, spec.dependencies)
        info = service_info(spec.name, env)
    except ConfigError as error:
        print(f"{spec.name}: {error}", file=sys.stderr)
        sys.exit(CONFIG_ERROR_EXIT_CODE)
    configure_logging(spec.name, settings.log_level)
    serve(spec, settings, info)
