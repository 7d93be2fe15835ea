"""Transport security to the backing services: TLS and authentication settings.

Read from the environment with the other settings and checked before anything starts:
every file must be readable and hold what it should, and every combination must make
sense (a verifying mode needs a CA, SASL needs a mechanism and credentials).
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

DATABASE_SSLMODES = ("disable", "require", "verify-ca", "verify-full")
KAFKA_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
KAFKA_SASL_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
PEM_CA = "a readable PEM file with the CA certificate(s) that signed the server's certificate"
PEM_CERT = "a readable PEM file with the client certificate"
PEM_KEY = "a readable PEM file with the client certificate's unencrypted private key"


@dataclass(frozen=True)
class DatabaseSecurity:
    sslmode: str = "disable"
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None


@dataclass(frozen=True)
class RedisSecurity:
    ca_file: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class KafkaSecurity:
    protocol: str = "PLAINTEXT"
    ca_file: str | None = None
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class TransportSecurity:
    database: DatabaseSecurity = field(default_factory=DatabaseSecurity)
    redis: RedisSecurity = field(default_factory=RedisSecurity)
    kafka: KafkaSecurity = field(default_factory=KafkaSecurity)


class _Problems:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.found: list[str] = []

    def get(self, name: str) -> str | None:
        return self.environ.get(name, "").strip() or None

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.get(name)
        if value is None:
            return default
        if value not in choices:
            self.found.append(f"{name}={value!r} is unknown; expected one of {', '.join(choices)}")
            return default
        return value

    def readable_file(self, name: str, expected: str) -> str | None:
        path = self.get(name)
        if path is None:
            return None
        try:
            with open(path, "rb") as handle:
                handle.read(1)
        except OSError as error:
            self.found.append(
                f"{name}={path!r} is not readable ({error.strerror}); expected {expected}"
            )
            return None
        return path

    def ca_file(self, name: str) -> str | None:
        path = self.readable_file(name, PEM_CA)
        if path is not None:
            try:
                ssl.create_default_context(cafile=path)
            except ssl.SSLError as error:
                self.found.append(
                    f"{name}={path!r} holds no usable certificate ({error}); expected {PEM_CA}"
                )
                return None
        return path

    def client_pair(self, cert_name: str, key_name: str) -> tuple[str | None, str | None]:
        cert = self.readable_file(cert_name, PEM_CERT)
        key = self.readable_file(key_name, PEM_KEY)
        if (self.get(cert_name) is None) != (self.get(key_name) is None):
            self.found.append(
                f"{cert_name} and {key_name} must be set together (client certificate and its key)"
            )
            return None, None
        if cert is not None and key is not None:
            try:
                ssl.create_default_context().load_cert_chain(cert, key)
            except ssl.SSLError as error:
                self.found.append(
                    f"{cert_name}={cert!r} and {key_name}={key!r} are not a certificate and its "
                    f"matching private key ({error}); expected {PEM_CERT} and {PEM_KEY}"
                )
                return None, None
        return cert, key

    def forbid(self, names: tuple[str, ...], reason: str) -> None:
        for name in names:
            if self.get(name) is not None:
                self.found.append(f"{name} is set but {reason}")


def _database(problems: _Problems, url: str | None) -> DatabaseSecurity:
    sslmode = problems.choice("DATABASE_SSLMODE", DATABASE_SSLMODES, "disable")
    if url is not None:
        query = parse_qs(urlsplit(url).query)
        carried = sorted(key for key in query if key.startswith("ssl"))
        if carried:
            problems.found.append(
                f"DATABASE_URL carries {', '.join(carried)}; set DATABASE_SSLMODE and "
                "DATABASE_SSL_CA_FILE / DATABASE_SSL_CERT_FILE / DATABASE_SSL_KEY_FILE instead"
            )
    ca_file = problems.ca_file("DATABASE_SSL_CA_FILE")
    cert_file, key_file = problems.client_pair("DATABASE_SSL_CERT_FILE", "DATABASE_SSL_KEY_FILE")
    if sslmode in ("verify-ca", "verify-full") and problems.get("DATABASE_SSL_CA_FILE") is None:
        problems.found.append(
            f"DATABASE_SSLMODE={sslmode} needs DATABASE_SSL_CA_FILE; expected {PEM_CA}"
        )
    if sslmode in ("disable", "require"):
        problems.forbid(
            ("DATABASE_SSL_CA_FILE",),
            f"DATABASE_SSLMODE={sslmode} does not verify the server; use verify-full",
        )
    if sslmode == "disable":
        problems.forbid(
            ("DATABASE_SSL_CERT_FILE", "DATABASE_SSL_KEY_FILE"),
            "DATABASE_SSLMODE=disable sends no certificate; use verify-full",
        )
    return DatabaseSecurity(sslmode, ca_file, cert_file, key_file)


def _redis(problems: _Problems, url: str | None) -> RedisSecurity:
    ca_file = problems.ca_file("REDIS_SSL_CA_FILE")
    username = problems.get("REDIS_USERNAME")
    password = problems.get("REDIS_PASSWORD")
    if url is not None:
        parts = urlsplit(url)
        if parts.scheme == "rediss" and problems.get("REDIS_SSL_CA_FILE") is None:
            problems.found.append(
                f"REDIS_URL uses rediss:// (TLS) but REDIS_SSL_CA_FILE is not set; expected {PEM_CA}"
            )
        if parts.scheme == "redis":
            problems.forbid(
                ("REDIS_SSL_CA_FILE",), "REDIS_URL uses redis:// (plain text); use rediss://"
            )
        if (parts.username or parts.password) and (username or password):
            problems.found.append(
                "REDIS_URL carries credentials and REDIS_USERNAME/REDIS_PASSWORD are set; "
                "set them in one place (REDIS_USERNAME and REDIS_PASSWORD)"
            )
    if username is not None and password is None:
        problems.found.append(
            "REDIS_USERNAME is set but REDIS_PASSWORD is not; an ACL user needs both"
        )
    return RedisSecurity(ca_file, username, password)


def _kafka(problems: _Problems) -> KafkaSecurity:
    protocol = problems.choice("KAFKA_SECURITY_PROTOCOL", KAFKA_PROTOCOLS, "PLAINTEXT")
    ca_file = problems.ca_file("KAFKA_SSL_CA_FILE")
    uses_tls = protocol in ("SSL", "SASL_SSL")
    uses_sasl = protocol.startswith("SASL_")
    if uses_tls and problems.get("KAFKA_SSL_CA_FILE") is None:
        problems.found.append(
            f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SSL_CA_FILE; expected {PEM_CA}"
        )
    if not uses_tls:
        problems.forbid(
            ("KAFKA_SSL_CA_FILE",),
            f"KAFKA_SECURITY_PROTOCOL={protocol} is plain text; use SSL or SASL_SSL",
        )
    mechanism = username = password = None
    sasl_names = ("KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD")
    if uses_sasl:
        if problems.get("KAFKA_SASL_MECHANISM") is None:
            problems.found.append(
                f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_MECHANISM; expected one of "
                + ", ".join(KAFKA_SASL_MECHANISMS)
            )
        else:
            mechanism = problems.choice("KAFKA_SASL_MECHANISM", KAFKA_SASL_MECHANISMS, "")
        username = problems.get("KAFKA_SASL_USERNAME")
        password = problems.get("KAFKA_SASL_PASSWORD")
        for name, value in (("KAFKA_SASL_USERNAME", username), ("KAFKA_SASL_PASSWORD", password)):
            if value is None:
                problems.found.append(f"KAFKA_SECURITY_PROTOCOL={protocol} needs {name}")
    else:
        problems.forbid(
            sasl_names, f"KAFKA_SECURITY_PROTOCOL={protocol} does not authenticate; use SASL_SSL"
        )
    return KafkaSecurity(protocol, ca_file, mechanism or None, username, password)


def read_transport_security(
    environ: Mapping[str, str], database_url: str | None, redis_url: str | None
) -> tuple[TransportSecurity, list[str]]:
    """The security settings and every problem found in them (an empty list when none)."""
    problems = _Problems(environ)
    security = TransportSecurity(
        database=_database(problems, database_url),
        redis=_redis(problems, redis_url),
        kafka=_kafka(problems),
    )
    return security, problems.found


def database_ssl(security: DatabaseSecurity) -> ssl.SSLContext | bool:
    """asyncpg's `ssl` argument for the configured mode."""
    if security.sslmode == "disable":
        return False
    context = ssl.create_default_context(cafile=security.ca_file)
    if security.sslmode == "require":
        # Encrypted but unauthenticated, as libpq's `require` without a root certificate.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif security.sslmode == "verify-ca":
        context.check_hostname = False
    if security.cert_file and security.key_file:
        context.load_cert_chain(security.cert_file, security.key_file)
    return context


def redis_options(security: RedisSecurity) -> dict[str, Any]:
    """Keyword arguments for redis.asyncio.Redis.from_url (rediss:// turns TLS on)."""
    options: dict[str, Any] = {}
    if security.ca_file:
        options.update(
            ssl_ca_certs=security.ca_file, ssl_cert_reqs="required", ssl_check_hostname=True
        )
    if security.password:
        options.update(username=security.username, password=security.password)
    return options


def kafka_options(security: KafkaSecurity) -> dict[str, Any]:
    """Keyword arguments for aiokafka clients."""
    options: dict[str, Any] = {"security_protocol": security.protocol}
    if security.ca_file:
        options["ssl_context"] = ssl.create_default_context(cafile=security.ca_file)
    if security.sasl_mechanism:
        options.update(
            sasl_mechanism=security.sasl_mechanism,
            sasl_plain_username=security.sasl_username,
            sasl_plain_password=security.sasl_password,
        )
    return options
