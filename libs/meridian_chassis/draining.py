"""While draining, every response tells its client to close the connection.

A keep-alive client that sends requests back to back never sits idle long enough to
see the listener close; `Connection: close` makes it reconnect (through the load
balancer, to a pod that is ready) after the response it is reading.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from meridian_chassis.lifecycle import Lifecycle, Phase

CLOSE = (b"connection", b"close")


class CloseConnectionsWhileDraining:
    def __init__(self, app: ASGIApp, lifecycle: Lifecycle) -> None:
        self.app = app
        self.lifecycle = lifecycle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start" and self.lifecycle.phase is Phase.DRAINING:
                headers = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() != b"connection"
                ]
                message = {**message, "headers": [*headers, CLOSE]}
            await send(message)

        await self.app(scope, receive, send_closing)
