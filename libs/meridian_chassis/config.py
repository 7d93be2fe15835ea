"""Service settings read from the environment and validated before anything starts."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import TypeVar
from urllib.parse import urlsplit

from meridian_chassis.transport import TransportSecurity, read_transport_security

T = TypeVar("T")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEPENDENCY_SETTINGS = {
    "database": "DATABASE_URL",
    "redis": "REDIS_URL",
    "kafka": "KAFKA_BOOTSTRAP_SERVERS",
}
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - services listen on the pod network
_HOST_PORT = re.compile(r"^(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(?P<port>\d{1,5})$")


class ConfigError(Exception):
    """One or more settings are missing or malformed; the message names each one."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclasses.dataclass(frozen=True)
class Settings:
    host: str
    port: int
    log_level: str
    database_url: str | None
    redis_url: str | None
    kafka_bootstrap_servers: tuple[str, ...]
    readiness_timeout_seconds: float
    readiness_cache_seconds: float
    shutdown_delay_seconds: float
    shutdown_grace_seconds: float
    reload: bool
    access_log_probes: bool = False
    security: TransportSecurity = dataclasses.field(default_factory=TransportSecurity)


def _port(value: str) -> int:
    number = int(value)
    if not 1 <= number <= 65535:
        raise ValueError
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError
    return number


def _non_negative_float(value: str) -> float:
    number = float(value)
    if not number >= 0:
        raise ValueError
    return number


def _flag(value: str) -> bool:
    lowered = value.lower()
    if lowered not in {"0", "1", "true", "false"}:
        raise ValueError
    return lowered in {"1", "true"}


def _log_level(value: str) -> str:
    level = value.upper()
    if level not in LOG_LEVELS:
        raise ValueError
    return level


def _url(*schemes: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in schemes or not parts.hostname:
            raise ValueError
        _ = parts.port  # raises ValueError for a non-numeric or out-of-range port
        return value

    return parse


def _bootstrap_servers(value: str) -> tuple[str, ...]:
    servers = tuple(part.strip() for part in value.split(","))
    for server in servers:
        match = _HOST_PORT.match(server)
        if match is None or not 1 <= int(match["port"]) <= 65535:
            raise ValueError
    return servers


class _Reader:
    """Collects every problem so one start-up attempt reports them all."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.problems: list[str] = []

    def read(
        self, name: str, parse: Callable[[str], T], expected: str, default: T, required: bool
    ) -> T:
        raw = self.environ.get(name, "").strip()
        if not raw:
            if required:
                self.problems.append(f"{name} is required; expected {expected}")
            return default
        try:
            return parse(raw)
        except ValueError:
            self.problems.append(f"{name}={raw!r} is malformed; expected {expected}")
            return default


def load_settings(environ: Mapping[str, str], required: frozenset[str] = frozenset()) -> Settings:
    """Read settings; `required` names dependencies ("database", "redis", "kafka")."""
    unknown = required - DEPENDENCY_SETTINGS.keys()
    if unknown:
        raise ValueError(
            f"unknown dependencies {sorted(unknown)}; known: {sorted(DEPENDENCY_SETTINGS)}"
        )
    reader = _Reader(environ)
    settings = Settings(
        host=reader.read(
            "HOST", str, "an interface address such as 0.0.0.0", ALL_INTERFACES, False
        ),
        port=reader.read("PORT", _port, "an integer from 1 to 65535", 8080, False),
        log_level=reader.read(
            "LOG_LEVEL", _log_level, "one of " + ", ".join(LOG_LEVELS), "INFO", False
        ),
        database_url=reader.read(
            "DATABASE_URL",
            _url("postgresql", "postgres", "cockroachdb"),
            "a URL like postgresql://user@host:26257/dbname",
            None,
            "database" in required,
        ),
        redis_url=reader.read(
            "REDIS_URL",
            _url("redis", "rediss"),
            "a URL like redis://host:6379/0",
            None,
            "redis" in required,
        ),
        kafka_bootstrap_servers=reader.read(
            "KAFKA_BOOTSTRAP_SERVERS",
            _bootstrap_servers,
            "comma-separated host:port pairs like kafka:9092",
            (),
            "kafka" in required,
        ),
        readiness_timeout_seconds=reader.read(
            "READINESS_TIMEOUT_SECONDS", _positive_float, "a number of seconds > 0", 1.0, False
        ),
        readiness_cache_seconds=reader.read(
            "READINESS_CACHE_SECONDS", _non_negative_float, "a number of seconds >= 0", 1.0, False
        ),
        shutdown_delay_seconds=reader.read(
            "SHUTDOWN_DELAY_SECONDS", _non_negative_float, "a number of seconds >= 0", 0.0, False
        ),
        shutdown_grace_seconds=reader.read(
            "SHUTDOWN_GRACE_SECONDS", _positive_float, "a number of seconds > 0", 10.0, False
        ),
        reload=reader.read("MERIDIAN_RELOAD", _flag, "1, 0, true or false", False, False),
        access_log_probes=reader.read(
            "ACCESS_LOG_PROBES", _flag, "1, 0, true or false", False, False
        ),
    )
    security, problems = read_transport_security(environ, settings.database_url, settings.redis_url)
    settings = dataclasses.replace(settings, security=security)
    reader.problems.extend(problems)
    if reader.problems:
        raise ConfigError(reader.problems)
    return settings
