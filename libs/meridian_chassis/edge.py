"""The HTTP edge: how long a client may take and how much it may hold or send.

uvicorn's HTTP/1.1 protocol (h11) arms no timer until a first response is done, so a
client that connects and sends nothing, or half a request line a byte at a time, holds
its connection (a file descriptor, buffers) for as long as it likes. Here every
connection is always under exactly one deadline, chosen by where it stands:

- request head (connect, or the first byte after an idle keep-alive, to the end of the
  headers): `header_timeout_seconds` for the whole head, then 408;
- request body (end of the headers to the end of the body): `body_timeout_seconds` for
  the whole body, then 408 (or a plain close once the response has started);
- idle keep-alive between requests: `keepalive_timeout_seconds`, then a quiet close;
- the application's turn (request read, response not done): no deadline of the edge.

Apart from those, a response the client stops taking: once the socket and the transport's
buffer are full (asyncio pauses writing), the client has `write_timeout_seconds` to take
more, else the connection is reset and its buffered response freed.

A head over `max_header_bytes` gets 431, a body over `max_body_bytes` (declared or
counted) 413, and a connection beyond `max_connections` an immediate 503: none of them
reaches the application. Refusals write their response, half-close and discard what
the client still sends for a moment, so the client reads the status instead of a reset.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import socket
import struct
import time
from collections import Counter
from typing import Any, ClassVar

import h11  # pants: no-infer-dep (uvicorn's HTTP/1.1 parser, installed with it)
from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PrometheusCounter
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol, RequestResponseCycle
from uvicorn.server import ServerState

from meridian_chassis.config import HttpLimits

log = logging.getLogger("meridian.edge")
# How long a refused connection may keep sending (discarded) before it is reset.
LINGER_SECONDS = 1.0
# Shed connections are logged as counts, at most this often: a flood must not flood logs.
SHED_LOG_INTERVAL_SECONDS = 10.0
# asyncio reads at most this much per call: h11's own limit must stay above the head
# limit plus one read, so the edge answers 431 before h11 answers 400.
_MAX_READ = 256 * 1024


def _response(status: int, reason: str) -> bytes:
    body = f"{reason}\n".encode()
    return (
        (
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n"
        ).encode()
        + (b"retry-after: 1\r\n" if status == 503 else b"")
        + b"\r\n"
        + body
    )


OVERLOADED = _response(503, "Service Unavailable")
HEAD_TIMEOUT = _response(408, "Request Timeout")
HEAD_TOO_LARGE = _response(431, "Request Header Fields Too Large")
BODY_TOO_LARGE = _response(413, "Content Too Large")


class Phase(enum.Enum):
    HEAD = "head"
    BODY = "body"
    IDLE = "idle"
    APPLICATION = "application"


class Shed:
    """Counts shed connections by reason (in /metrics as http_connections_shed_total) and
    logs the counts at most every few seconds."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.total = PrometheusCounter(
            "http_connections_shed",
            "Connections the HTTP edge closed or refused before the application, by reason.",
            ["reason"],
            registry=registry,
        )
        self.unlogged: Counter[str] = Counter()
        self.logged = 0.0

    def __call__(self, reason: str) -> None:
        self.total.labels(reason).inc()
        self.unlogged[reason] += 1
        now = time.monotonic()
        if now - self.logged >= SHED_LOG_INTERVAL_SECONDS:
            self.logged = now
            log.warning("connections shed", extra={"shed": dict(self.unlogged)})
            self.unlogged.clear()


class EdgeProtocol(H11Protocol):
    """H11Protocol under the deadlines and limits above; `limits` set by `edge_protocol`."""

    limits: ClassVar[HttpLimits] = HttpLimits()
    shed: ClassVar[Shed] = Shed(registry=None)

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.deadline: asyncio.TimerHandle | None = None
        self.write_deadline: asyncio.TimerHandle | None = None
        self.phase: Phase | None = None
        self.lingering = False
        self.checked_cycle: object = None
        self.body_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            self.transport = transport
            self.refuse(OVERLOADED, "connection_limit")
            return
        super().connection_made(transport)
        self.watch()

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return
        cycle: RequestResponseCycle | None = self.cycle
        before = len(cycle.body) if cycle is not None else 0
        super().data_received(data)
        if self.cycle is cycle and cycle is not None:
            self.body_bytes += len(cycle.body) - before
        self.watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self.watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self.cancel_deadline()
        self.cancel_write_deadline()
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.write_deadline is None and not self.lingering:
            self.write_deadline = self.loop.call_later(
                self.limits.write_timeout_seconds, self.write_expired
            )

    def resume_writing(self) -> None:
        super().resume_writing()
        self.cancel_write_deadline()

    def write_expired(self) -> None:
        self.write_deadline = None
        self.shed("write_timeout")
        # A reset, not a close: a closed socket's kernel would still hold up to its send
        # buffer (megabytes) for the client that does not read.
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()

    def cancel_write_deadline(self) -> None:
        if self.write_deadline is not None:
            self.write_deadline.cancel()
            self.write_deadline = None

    def watch(self) -> None:
        """Check the limits and put the connection under the deadline of where it stands."""
        if self.lingering or self.transport.is_closing():
            self.cancel_deadline()
            return
        if self.over_limits():
            return
        phase = self.current_phase()
        if phase is Phase.IDLE:
            self._unset_keepalive_if_required()  # uvicorn's whole-second timer; ours instead
        if phase is self.phase:
            return  # the deadline runs for the whole phase, however the bytes trickle in
        self.phase = phase
        self.cancel_deadline()
        timeouts = {
            Phase.HEAD: self.limits.header_timeout_seconds,
            Phase.BODY: self.limits.body_timeout_seconds,
            Phase.IDLE: self.limits.keepalive_timeout_seconds,
        }
        if phase in timeouts:
            self.deadline = self.loop.call_later(timeouts[phase], self.expired, phase)

    def current_phase(self) -> Phase:
        their = self.conn.their_state
        if their is h11.IDLE:
            started = self.cycle is None or bool(self.conn.trailing_data[0])
            return Phase.HEAD if started else Phase.IDLE
        if their is h11.SEND_BODY:
            return Phase.BODY
        return Phase.APPLICATION

    def over_limits(self) -> bool:
        """Refuse the request if it is over a limit; True if it was."""
        refusal = (
            self.head_refusal() if self.conn.their_state is h11.IDLE else self.request_refusal()
        )
        if refusal is not None:
            response, reason = refusal
            self.refuse(response, reason)
        return refusal is not None

    def head_refusal(self) -> tuple[bytes, str] | None:
        """A head still arriving: refused once what is buffered is over the limit."""
        if len(self.conn.trailing_data[0]) > self.limits.max_header_bytes:
            return HEAD_TOO_LARGE, "head_too_large"
        return None

    def request_refusal(self) -> tuple[bytes, str] | None:
        """A parsed request: its head (it may have come whole in one read), its declared
        body on first sight, and the body counted so far."""
        cycle: RequestResponseCycle | None = self.cycle  # None until a first request
        if cycle is None:
            return None
        if cycle is not self.checked_cycle:
            self.checked_cycle = cycle
            self.body_bytes = len(cycle.body)
            scope = cycle.scope
            head = len(scope["raw_path"]) + len(scope["query_string"]) + len(scope["method"])
            head += sum(len(name) + len(value) + 4 for name, value in self.headers)
            if head > self.limits.max_header_bytes:
                return HEAD_TOO_LARGE, "head_too_large"
            declared = dict(self.headers).get(b"content-length", b"0")
            if declared.isdigit() and int(declared) > self.limits.max_body_bytes:
                return BODY_TOO_LARGE, "body_too_large"
        if self.body_bytes > self.limits.max_body_bytes:
            return BODY_TOO_LARGE, "body_too_large"
        return None

    def expired(self, phase: Phase) -> None:
        self.deadline = None
        if phase is Phase.IDLE:
            self.timeout_keep_alive_handler()
        elif phase is Phase.HEAD and not self.conn.trailing_data[0]:
            self.shed("head_timeout")
            self.transport.close()
        elif self.cycle is not None and self.cycle.response_started and phase is Phase.BODY:
            self.shed("body_timeout")
            self.transport.close()
        else:
            self.refuse(HEAD_TIMEOUT, f"{phase.value}_timeout")

    def refuse(self, response: bytes, reason: str) -> None:
        """Answer `response` in the application's stead, then close without a reset."""
        self.shed(reason)
        self.cancel_deadline()
        self.lingering = True
        self.connections.discard(self)  # no longer counts against the limit
        if self.cycle is not None and not self.cycle.response_complete:
            # The application (if it runs at all) reads a disconnect and writes nothing.
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        transport = self.transport
        transport.write(response)
        if transport.can_write_eof():
            transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, transport.abort)

    def cancel_deadline(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None


def edge_protocol(limits: HttpLimits, registry: CollectorRegistry) -> type[EdgeProtocol]:
    """The protocol class for uvicorn's `http` setting, under these limits, counting
    what it sheds in `registry`."""
    return type("BoundedEdgeProtocol", (EdgeProtocol,), {"limits": limits, "shed": Shed(registry)})


def h11_buffer_limit(limits: HttpLimits) -> int:
    """h11's incomplete-event limit: above the edge's own, so the edge answers first."""
    return limits.max_header_bytes + _MAX_READ + 1
