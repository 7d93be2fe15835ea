"""The service's Kafka producer: aiokafka."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any, ClassVar

from aiokafka import AIOKafkaProducer

from meridian_chassis.clients import DependencyUnavailableError, opened
from meridian_chassis.config import Settings
from meridian_chassis.transport import kafka_options


class KafkaClient:
    """`producer` is an AIOKafkaProducer, started by the first readiness check that
    reaches a broker (a broker down at start-up is retried at each check); sends wait
    for a broker at most CLIENT_TIMEOUT_SECONDS."""

    need: ClassVar[str] = "kafka"

    def __init__(self, servers: Sequence[str], options: dict[str, Any], timeout: float) -> None:
        self.servers = list(servers)
        self.options = options
        self.timeout = timeout
        self._producer: AIOKafkaProducer | None = None
        self._starting = asyncio.Lock()
        self._closed = False

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaClient:
        options = kafka_options(settings.security.kafka)
        return cls(settings.kafka_bootstrap_servers, options, settings.client_timeout_seconds)

    @property
    def producer(self) -> AIOKafkaProducer:
        return opened(self._producer, "kafka: no broker reached yet")

    async def start(self) -> AIOKafkaProducer:
        async with self._starting:
            if self._closed:
                raise DependencyUnavailableError("kafka: the producer is closed (shutting down)")
            if self._producer is None:
                timeout_ms = int(self.timeout * 1000)
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.servers,
                    request_timeout_ms=timeout_ms,
                    **self.options,
                )
                try:
                    await producer.start()
                    # start() drops its bootstrap connection: the broker connection that
                    # later checks reuse opens now, so readiness traffic opens none.
                    await producer.client.fetch_all_metadata()
                except BaseException:
                    # A producer that failed to start cannot be started again.
                    with contextlib.suppress(Exception):
                        await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def check(self) -> None:
        if self._producer is None:
            await self.start()
            return
        # Asks a known broker over the producer's open connection (reconnecting if needed).
        await self._producer.client.fetch_all_metadata()

    async def close(self) -> None:
        async with self._starting:
            self._closed = True
            if self._producer is not None:
                producer, self._producer = self._producer, None
                # Sends what is still buffered, then disconnects.
                await producer.stop()


CLIENT = KafkaClient
