"""Service settings read from the environment and validated before anything starts."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import TypeVar
from urllib.parse import urlsplit

from meridian_chassis.declaration import BACKING_SERVICES, CONTAINER_PORT
from meridian_chassis.redaction import mask_url, url_secrets
from meridian_chassis.transport import TransportSecurity, read_transport_security

T = TypeVar("T")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEPENDENCY_SETTINGS = {backing.need: backing.setting for backing in BACKING_SERVICES}
# Every setting of a dependency starts with its prefix (DATABASE_URL, DATABASE_SSLMODE...).
DEPENDENCY_PREFIXES = {backing.need: backing.prefix for backing in BACKING_SERVICES}
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - services listen on the pod network
# Settings that carry credentials: each may come from a file instead (NAME_FILE).
FILE_SETTINGS = (
    "DATABASE_URL",
    "REDIS_URL",
    "REDIS_USERNAME",
    "REDIS_PASSWORD",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
)
MAX_SECRET_FILE_BYTES = 64 * 1024
_HOST_PORT = re.compile(r"^(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(?P<port>\d{1,5})$")


class ConfigError(Exception):
    """One or more settings are missing or malformed; the message names each one."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


class OutOfRangeError(ValueError):
    """A well-formed value outside the setting's bounds."""


@dataclasses.dataclass(frozen=True)
class HttpLimits:
    """What the HTTP edge allows each client (see meridian_chassis.edge)."""

    max_connections: int = 1024
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 30.0
    keepalive_timeout_seconds: float = 5.0
    write_timeout_seconds: float = 30.0
    max_header_bytes: int = 16 * 1024
    max_body_bytes: int = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Settings:
    host: str
    port: int
    log_level: str
    database_url: str | None = dataclasses.field(repr=False)
    redis_url: str | None = dataclasses.field(repr=False)
    kafka_bootstrap_servers: tuple[str, ...]
    readiness_timeout_seconds: float
    readiness_cache_seconds: float
    shutdown_delay_seconds: float
    shutdown_grace_seconds: float
    reload: bool
    access_log_probes: bool = False
    http: HttpLimits = dataclasses.field(default_factory=HttpLimits)
    # The most one call to a backing service (connect, query, command, send) may take:
    # a degraded optional dependency fails requests' calls fast instead of holding them.
    client_timeout_seconds: float = 2.0
    security: TransportSecurity = dataclasses.field(default_factory=TransportSecurity)

    def secrets(self) -> list[str]:
        """Every secret value these settings hold, for masking in logs."""
        return [
            *url_secrets(self.database_url),
            *url_secrets(self.redis_url),
            self.security.redis.password or "",
            self.security.kafka.sasl_password or "",
        ]


_DIGITS = re.compile(r"^[0-9]+$")
# Plain decimal notation only: float() would also take inf, nan, 1e9 and 1_0.
_DECIMAL = re.compile(r"^[0-9]+(\.[0-9]+)?$")


def _integer(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        if not _DIGITS.match(value):
            raise ValueError
        number = int(value)
        if not low <= number <= high:
            raise OutOfRangeError
        return number

    return parse


def _seconds(high: float, zero_allowed: bool) -> Callable[[str], float]:
    def parse(value: str) -> float:
        if not _DECIMAL.match(value):
            raise ValueError
        number = float(value)
        if number > high or (number == 0 and not zero_allowed):
            raise OutOfRangeError
        return number

    return parse


def _seconds_form(high: float, zero_allowed: bool) -> str:
    low = "from 0" if zero_allowed else "above 0"
    return f"a number of seconds {low} to {high:g}, like 2.5"


def _port(value: str) -> int:
    return _integer(1, 65535)(value)


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
        host_port = parts.netloc.rpartition("@")[2]
        if host_port.startswith("["):
            host_port = host_port.partition("]")[2]
        if ":" in host_port:
            # Digits only: urlsplit's own port parsing takes "8_0" and "+80".
            _integer(1, 65535)(host_port.rpartition(":")[2])
        return value

    return parse


def _bootstrap_servers(value: str) -> tuple[str, ...]:
    servers = tuple(part.strip() for part in value.split(","))
    for server in servers:
        match = _HOST_PORT.match(server)
        if match is None or not 1 <= int(match["port"]) <= 65535:
            raise ValueError
    return servers


def _declared(name: str, needs: frozenset[str]) -> bool:
    """Whether a variable may be read: not one of an undeclared dependency's settings."""
    return not any(
        name.startswith(prefix)
        for dependency, prefix in DEPENDENCY_PREFIXES.items()
        if dependency not in needs
    )


class _Reader:
    """Collects every problem so one start-up attempt reports them all."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.problems: list[str] = []

    def read(
        self,
        name: str,
        parse: Callable[[str], T],
        expected: str,
        default: T,
        required: bool = False,
        secret: bool = False,
    ) -> T:
        raw = self.environ.get(name, "").strip()
        if not raw:
            if required:
                self.problems.append(f"{name} is required; expected {expected}")
            return default
        shown = mask_url(raw) if secret else raw
        try:
            return parse(raw)
        except OutOfRangeError:
            self.problems.append(f"{name}={shown!r} is out of range; expected {expected}")
        except ValueError:
            self.problems.append(f"{name}={shown!r} is malformed; expected {expected}")
        return default

    def seconds(self, name: str, default: float, high: float, zero_allowed: bool) -> float:
        parse = _seconds(high, zero_allowed)
        return self.read(name, parse, _seconds_form(high, zero_allowed), default)

    def integer(self, name: str, default: int, low: int, high: int, unit: str) -> int:
        expected = f"a whole number of {unit} from {low} to {high}"
        return self.read(name, _integer(low, high), expected, default)


def _http_limits(reader: _Reader) -> HttpLimits:
    defaults = HttpLimits()
    return HttpLimits(
        max_connections=reader.integer(
            "HTTP_MAX_CONNECTIONS", defaults.max_connections, 1, 100_000, "connections"
        ),
        header_timeout_seconds=reader.seconds(
            "HTTP_HEADER_TIMEOUT_SECONDS", defaults.header_timeout_seconds, 300, False
        ),
        body_timeout_seconds=reader.seconds(
            "HTTP_BODY_TIMEOUT_SECONDS", defaults.body_timeout_seconds, 600, False
        ),
        keepalive_timeout_seconds=reader.seconds(
            "HTTP_KEEPALIVE_TIMEOUT_SECONDS", defaults.keepalive_timeout_seconds, 600, False
        ),
        write_timeout_seconds=reader.seconds(
            "HTTP_WRITE_TIMEOUT_SECONDS", defaults.write_timeout_seconds, 600, False
        ),
        max_header_bytes=reader.integer(
            "HTTP_MAX_HEADER_BYTES", defaults.max_header_bytes, 1024, 1024 * 1024, "bytes"
        ),
        max_body_bytes=reader.integer(
            "HTTP_MAX_BODY_BYTES", defaults.max_body_bytes, 0, 1024 * 1024 * 1024, "bytes"
        ),
    )


def _with_secret_files(environ: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """`NAME_FILE=path` sets NAME to the file's content (a mounted Secret's key), for the
    settings that carry credentials; setting both NAME and NAME_FILE is an error."""
    resolved, problems = dict(environ), []
    for name in FILE_SETTINGS:
        path = environ.get(f"{name}_FILE", "").strip()
        if not path:
            continue
        if environ.get(name, "").strip():
            problems.append(f"{name} and {name}_FILE are both set; set one of them")
            continue
        try:
            with open(path, encoding="utf-8") as handle:
                resolved[name] = handle.read(MAX_SECRET_FILE_BYTES + 1).strip()
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or "not UTF-8 text"
            problems.append(
                f"{name}_FILE={path!r} is not readable ({reason}); expected a file holding {name}"
            )
            continue
        if len(resolved[name]) > MAX_SECRET_FILE_BYTES:
            problems.append(f"{name}_FILE={path!r} is over {MAX_SECRET_FILE_BYTES} bytes")
    return resolved, problems


def load_settings(environ: Mapping[str, str], needs: frozenset[str] = frozenset()) -> Settings:
    """Read settings; `needs` names the dependencies the service declares ("database",
    "redis", "kafka"): their settings are required, the others' are not read at all.

    An environment may configure more than a service uses (Kubernetes gives every
    service the same backing-services ConfigMap): what a service does not declare is
    neither validated nor connected to.
    """
    unknown = needs - DEPENDENCY_SETTINGS.keys()
    if unknown:
        raise ValueError(
            f"unknown dependencies {sorted(unknown)}; known: {sorted(DEPENDENCY_SETTINGS)}"
        )
    declared = {name: value for name, value in environ.items() if _declared(name, needs)}
    resolved, file_problems = _with_secret_files(declared)
    reader = _Reader(resolved)
    reader.problems.extend(file_problems)
    settings = Settings(
        host=reader.read("HOST", str, "an interface address such as 0.0.0.0", ALL_INTERFACES),
        port=reader.read("PORT", _port, "an integer from 1 to 65535", CONTAINER_PORT),
        log_level=reader.read("LOG_LEVEL", _log_level, "one of " + ", ".join(LOG_LEVELS), "INFO"),
        database_url=reader.read(
            "DATABASE_URL",
            _url("postgresql", "postgres", "cockroachdb"),
            "a URL like postgresql://user@host:26257/dbname",
            None,
            required="database" in needs,
            secret=True,
        ),
        redis_url=reader.read(
            "REDIS_URL",
            _url("redis", "rediss"),
            "a URL like redis://host:6379/0",
            None,
            required="redis" in needs,
            secret=True,
        ),
        kafka_bootstrap_servers=reader.read(
            "KAFKA_BOOTSTRAP_SERVERS",
            _bootstrap_servers,
            "comma-separated host:port pairs like kafka:9092",
            (),
            required="kafka" in needs,
        ),
        readiness_timeout_seconds=reader.seconds("READINESS_TIMEOUT_SECONDS", 1.0, 60, False),
        readiness_cache_seconds=reader.seconds("READINESS_CACHE_SECONDS", 1.0, 60, True),
        shutdown_delay_seconds=reader.seconds("SHUTDOWN_DELAY_SECONDS", 0.0, 300, True),
        shutdown_grace_seconds=reader.seconds("SHUTDOWN_GRACE_SECONDS", 10.0, 300, False),
        reload=reader.read("MERIDIAN_RELOAD", _flag, "1, 0, true or false", False),
        access_log_probes=reader.read("ACCESS_LOG_PROBES", _flag, "1, 0, true or false", False),
        http=_http_limits(reader),
        client_timeout_seconds=reader.seconds("CLIENT_TIMEOUT_SECONDS", 2.0, 60, False),
    )
    security, problems = read_transport_security(
        resolved, settings.database_url, settings.redis_url
    )
    settings = dataclasses.replace(settings, security=security)
    reader.problems.extend(problems)
    if reader.problems:
        raise ConfigError(reader.problems)
    return settings
