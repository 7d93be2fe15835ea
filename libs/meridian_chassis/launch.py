"""A service's entry point: validate settings, listen at once, then load and serve.

The listener is bound before the web framework, the service's routes and the database,
Redis and Kafka clients are imported, so from the first moments of the process the kernel accepts
connections (queued until the server answers them) instead of refusing probes.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping

from meridian_chassis.config import ConfigError, Settings, load_settings
from meridian_chassis.reload import inherited_listener
from meridian_chassis.spec import ServiceSpec

CONFIG_ERROR_EXIT_CODE = 2
LISTEN_BACKLOG = 2048


def bind_listener(settings: Settings) -> socket.socket:
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio only turns Nagle off (TCP_NODELAY) on accepted
    # sockets whose protocol says TCP, and with Nagle on every keep-alive response
    # waits for a delayed ACK (tens of milliseconds).
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((settings.host, settings.port))
    listener.listen(LISTEN_BACKLOG)
    return listener


def _config_error(spec: ServiceSpec, error: ConfigError) -> None:
    print(f"{spec.name}: {error}", file=sys.stderr)
    sys.exit(CONFIG_ERROR_EXIT_CODE)


def run(spec: ServiceSpec, environ: Mapping[str, str] | None = None) -> None:
    """Entry point for a service's `main`: exits with code 2 on bad configuration."""
    env = os.environ if environ is None else environ
    try:
        settings = load_settings(env, spec.dependencies)
    except ConfigError as error:
        _config_error(spec, error)
    try:
        # After a reload (MERIDIAN_RELOAD=1) the socket is the one the process kept open.
        listener = inherited_listener() or bind_listener(settings)
    except OSError as error:
        print(
            f"{spec.name}: cannot listen on {settings.host}:{settings.port}: {error}",
            file=sys.stderr,
        )
        sys.exit(1)
    # Imported only now: loading them takes most of the start-up time.
    from meridian_chassis.buildinfo import service_info
    from meridian_chassis.clients import Clients, UndeclaredDependencyError
    from meridian_chassis.service import serve

    try:
        info = service_info(spec.name, env)
    except ConfigError as error:
        listener.close()
        _config_error(spec, error)
    clients = Clients(spec.name, settings, spec.dependencies, spec.optional)
    for problem in clients.missing():
        print(f"{spec.name}: {problem}", file=sys.stderr)
    if clients.missing():
        listener.close()
        sys.exit(1)
    try:
        routes = spec.routes(clients) if callable(spec.routes) else spec.routes
    except UndeclaredDependencyError as error:
        listener.close()
        print(f"{spec.name}: {error}", file=sys.stderr)
        sys.exit(CONFIG_ERROR_EXIT_CODE)
    serve(spec, settings, info, listener, clients, routes)
