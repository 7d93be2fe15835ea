"""The service's Redis client: redis-py's asyncio client over a bounded pool."""

from __future__ import annotations

from typing import Any, ClassVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from meridian_chassis.clients import configured, opened
from meridian_chassis.config import Settings
from meridian_chassis.transport import redis_options

POOL_SIZE = 20


class RedisClient:
    """`redis` is a redis.asyncio.Redis. Calls are not retried and each is bounded by
    CLIENT_TIMEOUT_SECONDS: with Redis down they fail at once (or by the timeout), so a
    service that treats Redis as optional answers without it."""

    need: ClassVar[str] = "redis"

    def __init__(self, url: str, options: dict[str, Any], timeout: float) -> None:
        self._redis: aioredis.Redis | None = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            max_connections=POOL_SIZE,
            **options,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisClient:
        return cls(
            configured(settings.redis_url, "REDIS_URL"),
            redis_options(settings.security.redis),
            settings.client_timeout_seconds,
        )

    @property
    def redis(self) -> aioredis.Redis:
        return opened(self._redis, "redis: the client is closed (shutting down)")

    async def check(self) -> None:
        await self.redis.ping()

    async def close(self) -> None:
        if self._redis is not None:
            client, self._redis = self._redis, None
            await client.aclose()


CLIENT = RedisClient
