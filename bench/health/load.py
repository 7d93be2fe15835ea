"""A small HTTP/1.1 load generator: keep-alive connections sending GETs back to back."""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from dataclasses import dataclass, field

# A server that stops answering shows as errors, not as a benchmark that never ends.
REQUEST_TIMEOUT_SECONDS = 10.0


@dataclass
class LoadResult:
    seconds: float
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, fraction: float) -> float:
        """Nearest-rank percentile of the latencies in seconds (0 when there are none)."""
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        rank = max(1, math.ceil(fraction * len(ordered)))
        return ordered[rank - 1]


def _content_length(head: bytes) -> tuple[int, int]:
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return status, int(value.strip())
    raise ValueError("response without Content-Length")


async def _connection(host: str, port: int, path: str, deadline: float, result: LoadResult) -> None:
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    while time.monotonic() < deadline:
        try:
            if writer is None or reader is None:
                reader, writer = await asyncio.open_connection(host, port)
            started = time.perf_counter()
            async with asyncio.timeout(REQUEST_TIMEOUT_SECONDS):
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status, length = _content_length(head)
                await reader.readexactly(length)
            result.latencies.append(time.perf_counter() - started)
            result.statuses[status] += 1
            if b"connection: close" in head.lower():
                writer.close()
                reader = writer = None
        except (OSError, asyncio.IncompleteReadError, ValueError, TimeoutError) as error:
            result.errors[type(error).__name__] += 1
            if writer is not None:
                writer.close()
            reader = writer = None
            await asyncio.sleep(0.01)
    if writer is not None:
        writer.close()


async def generate_load(
    host: str, port: int, path: str, connections: int, seconds: float
) -> LoadResult:
    """Send GET `path` over `connections` keep-alive connections for `seconds`."""
    started = time.monotonic()
    result = LoadResult(seconds=seconds)
    await asyncio.gather(
        *(_connection(host, port, path, started + seconds, result) for _ in range(connections))
    )
    result.seconds = time.monotonic() - started
    return result
