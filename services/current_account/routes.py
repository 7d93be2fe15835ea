"""current-account's routes: platform wiring, one request through each backing service.

PUT /v1/wiring/{key} (text body) writes the row and reads it back from the database,
caches it in Redis and publishes an event to Kafka; GET /v1/wiring/{key} reads it through
the cache. Redis is optional for this service (service.yaml): while it is down both
routes answer from the database, saying so, and readiness stays green.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from meridian_chassis.clients import Clients, DependencyUnavailableError
from meridian_chassis.clients.database import DatabaseClient
from meridian_chassis.clients.kafka import KafkaClient
from meridian_chassis.clients.redis import RedisClient

TOPIC = "current-account.wiring"
KEY = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MAX_VALUE_BYTES = 1024
CACHE_SECONDS = 300
SCHEMA = """
CREATE TABLE IF NOT EXISTS wiring (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""
UPSERT = """
INSERT INTO wiring (key, value) VALUES ($1, $2)
ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = now()
"""
SELECT = "SELECT value FROM wiring WHERE key = $1"


def _bad_key(key: str) -> Response | None:
    if KEY.match(key):
        return None
    return JSONResponse(
        {"error": f"key {key[:80]!r}: expected 1 to 64 letters, digits, '.', '_' or '-'"},
        status_code=400,
    )


def routes(clients: Clients) -> Sequence[BaseRoute]:
    database = clients.get(DatabaseClient)
    cache = clients.get(RedisClient)
    events = clients.get(KafkaClient)
    schema_ready = False

    async def read_row(key: str) -> str | None:
        nonlocal schema_ready
        if not schema_ready:
            await database.pool.execute(SCHEMA)
            schema_ready = True
        value: str | None = await database.pool.fetchval(SELECT, key)
        return value

    async def put(request: Request) -> Response:
        key = request.path_params["key"]
        body = await request.body()
        if (bad := _bad_key(key)) is not None:
            return bad
        if len(body) > MAX_VALUE_BYTES:
            return JSONResponse({"error": f"body over {MAX_VALUE_BYTES} bytes"}, 413)
        value = body.decode("utf-8", errors="replace")
        await read_row(key)  # makes the table on the first request
        await database.pool.execute(UPSERT, key, value)
        stored = await read_row(key)
        cached, cache_error = True, None
        try:
            await cache.redis.set(f"wiring:{key}", value, ex=CACHE_SECONDS)
        except (RedisError, DependencyUnavailableError) as error:
            cached, cache_error = False, type(error).__name__
        event = json.dumps({"key": key, "value": value}).encode()
        sent = await events.producer.send_and_wait(TOPIC, event, key=key.encode())
        return JSONResponse(
            {
                "key": key,
                "stored": stored,
                "cached": cached,
                "cache_error": cache_error,
                "event": {"topic": TOPIC, "partition": sent.partition, "offset": sent.offset},
            }
        )

    async def get(request: Request) -> Response:
        key = request.path_params["key"]
        if (bad := _bad_key(key)) is not None:
            return bad
        try:
            cached = await cache.redis.get(f"wiring:{key}")
        except (RedisError, DependencyUnavailableError):
            cached = None
        if cached is not None:
            value = cached.decode() if isinstance(cached, bytes) else cached
            return JSONResponse({"key": key, "value": value, "source": "cache"})
        stored = await read_row(key)
        if stored is None:
            return JSONResponse({"error": f"no value for {key}"}, status_code=404)
        return JSONResponse({"key": key, "value": stored, "source": "database"})

    return [
        Route("/v1/wiring/{key}", put, methods=["PUT"]),
        Route("/v1/wiring/{key}", get, methods=["GET"]),
    ]
