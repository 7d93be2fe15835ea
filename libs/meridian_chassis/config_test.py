from pathlib import Path

import pytest

from meridian_chassis.config import ConfigError, HttpLimits, load_settings
from meridian_chassis.declaration import CONTAINER_PORT
from meridian_testing.tls import make_ca

ALL = frozenset({"database", "redis", "kafka"})
GOOD = {
    "DATABASE_URL": "postgresql://meridian@db:26257/ledger",
    "REDIS_URL": "redis://cache:6379/0",
    "KAFKA_BOOTSTRAP_SERVERS": "kafka-0:9092,kafka-1:9092",
}


def test_defaults_when_nothing_is_required() -> None:
    settings = load_settings({})
    assert settings.http == HttpLimits(
        max_connections=1024,
        header_timeout_seconds=10.0,
        body_timeout_seconds=30.0,
        keepalive_timeout_seconds=5.0,
        write_timeout_seconds=30.0,
        max_header_bytes=16384,
        max_body_bytes=1048576,
    )
    assert settings.port == CONTAINER_PORT
    assert settings.log_level == "INFO"
    assert settings.database_url is None
    assert settings.kafka_bootstrap_servers == ()


def test_reads_every_setting() -> None:
    env = {
        **GOOD,
        "PORT": "9000",
        "LOG_LEVEL": "debug",
        "SHUTDOWN_GRACE_SECONDS": "2.5",
        "HTTP_MAX_CONNECTIONS": "50",
        "HTTP_HEADER_TIMEOUT_SECONDS": "0.5",
        "HTTP_MAX_BODY_BYTES": "0",
    }
    settings = load_settings(env, ALL)
    assert (settings.http.max_connections, settings.http.header_timeout_seconds) == (50, 0.5)
    assert settings.http.max_body_bytes == 0
    assert settings.port == 9000
    assert settings.log_level == "DEBUG"
    assert settings.kafka_bootstrap_servers == ("kafka-0:9092", "kafka-1:9092")
    assert settings.shutdown_grace_seconds == 2.5


def test_missing_required_dependency_names_the_variable_and_form() -> None:
    with pytest.raises(ConfigError) as error:
        load_settings({"REDIS_URL": GOOD["REDIS_URL"]}, ALL)
    message = str(error.value)
    assert "DATABASE_URL is required; expected a URL like postgresql://" in message
    assert "KAFKA_BOOTSTRAP_SERVERS is required; expected comma-separated host:port" in message
    assert "REDIS_URL" not in message


def test_settings_of_undeclared_dependencies_are_not_read() -> None:
    """Kubernetes gives every service every backing service's settings; a service that
    needs none of them starts, and connects to nothing."""
    env = {
        **GOOD,
        "DATABASE_SSLMODE": "verify-full",
        "REDIS_URL": "rediss://cache:6379/0",
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    }
    settings = load_settings(env, frozenset())
    assert (settings.database_url, settings.redis_url) == (None, None)
    assert settings.kafka_bootstrap_servers == ()
    assert settings.security.kafka.protocol == "PLAINTEXT"
    with pytest.raises(ConfigError, match="KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KAFKA_SASL"):
        load_settings(env, frozenset({"kafka"}))


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("PORT", "http", "an integer from 1 to 65535"),
        ("PORT", "8_0_9_9", "an integer from 1 to 65535"),
        ("PORT", "+8099", "an integer from 1 to 65535"),
        ("PORT", "\uff18\uff10\uff19\uff19", "an integer from 1 to 65535"),
        ("LOG_LEVEL", "LOUD", "one of DEBUG, INFO"),
        ("DATABASE_URL", "mysql://db/ledger", "a URL like postgresql://"),
        ("DATABASE_URL", "postgresql://db:port/ledger", "a URL like postgresql://"),
        ("DATABASE_URL", "postgresql://db:5_432/ledger", "a URL like postgresql://"),
        ("REDIS_URL", "cache:6379", "a URL like redis://"),
        ("REDIS_URL", "redis://cache:+6379/0", "a URL like redis://"),
        ("KAFKA_BOOTSTRAP_SERVERS", "kafka", "comma-separated host:port pairs"),
        ("KAFKA_BOOTSTRAP_SERVERS", "kafka:99999", "comma-separated host:port pairs"),
        ("SHUTDOWN_GRACE_SECONDS", "-1", "a number of seconds above 0 to 300"),
        ("SHUTDOWN_GRACE_SECONDS", "inf", "a number of seconds above 0 to 300"),
        ("SHUTDOWN_GRACE_SECONDS", "nan", "a number of seconds above 0 to 300"),
        ("SHUTDOWN_GRACE_SECONDS", "1e3", "a number of seconds above 0 to 300"),
        ("SHUTDOWN_DELAY_SECONDS", "soon", "a number of seconds from 0 to 300"),
        ("SHUTDOWN_DELAY_SECONDS", "Infinity", "a number of seconds from 0 to 300"),
        ("READINESS_TIMEOUT_SECONDS", "1_0", "a number of seconds above 0 to 60"),
        ("READINESS_CACHE_SECONDS", "inf", "a number of seconds from 0 to 60"),
        ("HTTP_MAX_CONNECTIONS", "1e3", "a whole number of connections from 1 to 100000"),
        ("HTTP_HEADER_TIMEOUT_SECONDS", "inf", "a number of seconds above 0 to 300"),
        ("HTTP_BODY_TIMEOUT_SECONDS", "-1", "a number of seconds above 0 to 600"),
        ("HTTP_KEEPALIVE_TIMEOUT_SECONDS", "nan", "a number of seconds above 0 to 600"),
        ("HTTP_MAX_HEADER_BYTES", "16k", "a whole number of bytes from 1024 to 1048576"),
    ],
)
def test_malformed_value_names_the_variable_and_form(name: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings({**GOOD, name: value}, ALL)
    [problem] = error.value.problems
    assert problem.startswith(f"{name}={value!r} is malformed; expected {expected}")


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("PORT", "0", "an integer from 1 to 65535"),
        ("PORT", "70000", "an integer from 1 to 65535"),
        ("READINESS_TIMEOUT_SECONDS", "0", "a number of seconds above 0 to 60"),
        ("READINESS_TIMEOUT_SECONDS", "61", "a number of seconds above 0 to 60"),
        ("READINESS_CACHE_SECONDS", "3600", "a number of seconds from 0 to 60"),
        ("SHUTDOWN_DELAY_SECONDS", "300.5", "a number of seconds from 0 to 300"),
        ("SHUTDOWN_GRACE_SECONDS", "0.0", "a number of seconds above 0 to 300"),
        ("SHUTDOWN_GRACE_SECONDS", "99999999999999999999999", "a number of seconds above 0"),
        ("HTTP_MAX_CONNECTIONS", "0", "a whole number of connections from 1 to 100000"),
        ("HTTP_HEADER_TIMEOUT_SECONDS", "0", "a number of seconds above 0 to 300"),
        ("HTTP_KEEPALIVE_TIMEOUT_SECONDS", "601", "a number of seconds above 0 to 600"),
        ("HTTP_WRITE_TIMEOUT_SECONDS", "0", "a number of seconds above 0 to 600"),
        ("HTTP_MAX_HEADER_BYTES", "512", "a whole number of bytes from 1024 to 1048576"),
        ("HTTP_MAX_BODY_BYTES", "2147483648", "a whole number of bytes from 0 to 1073741824"),
    ],
)
def test_out_of_range_value_names_the_variable_and_bounds(
    name: str, value: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings({**GOOD, name: value}, ALL)
    [problem] = error.value.problems
    assert problem.startswith(f"{name}={value!r} is out of range; expected {expected}")


def test_bounds_are_inclusive() -> None:
    env = {
        **GOOD,
        "PORT": "65535",
        "SHUTDOWN_DELAY_SECONDS": "0",
        "SHUTDOWN_GRACE_SECONDS": "300",
        "READINESS_CACHE_SECONDS": "0",
        "READINESS_TIMEOUT_SECONDS": "0.05",
    }
    settings = load_settings(env, ALL)
    assert (settings.port, settings.shutdown_grace_seconds) == (65535, 300.0)
    assert settings.readiness_timeout_seconds == 0.05


def test_reports_every_problem_at_once() -> None:
    with pytest.raises(ConfigError) as error:
        load_settings({"PORT": "x", "LOG_LEVEL": "y"}, frozenset({"redis"}))
    assert len(error.value.problems) == 3


def test_non_finite_numbers_are_reported_with_every_other_problem() -> None:
    env = {
        "PORT": "8_0_9_9",
        "SHUTDOWN_GRACE_SECONDS": "inf",
        "SHUTDOWN_DELAY_SECONDS": "inf",
        "READINESS_CACHE_SECONDS": "inf",
        "DATABASE_URL": "postgresql://app:S3cretP4ss@db:notaport/ledger",
    }
    with pytest.raises(ConfigError) as error:
        load_settings(env, frozenset({"database"}))
    names = [problem.split("=", 1)[0] for problem in error.value.problems]
    assert names == [
        "PORT",
        "DATABASE_URL",
        "READINESS_CACHE_SECONDS",
        "SHUTDOWN_DELAY_SECONDS",
        "SHUTDOWN_GRACE_SECONDS",
    ]


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        (
            "DATABASE_URL",
            "postgresql://app:S3cretP4ss@db:notaport/ledger",
            "postgresql://app:***@db:notaport/ledger",
        ),
        ("DATABASE_URL", "postgresql://app:S3cret/P4ss@db:x/l", "postgresql://app:***@db:x/l"),
        (
            "DATABASE_URL",
            "postgresql://db:x/ledger?user=app&password=S3cretP4ss",
            "postgresql://db:x/ledger?user=app&password=***",
        ),
        ("REDIS_URL", "redis://:S3cretP4ss@cache:port/0", "redis://:***@cache:port/0"),
        ("REDIS_URL", "cache:S3cretP4ss@host", "cache:***@host"),
    ],
)
def test_malformed_urls_are_shown_without_their_password(name: str, value: str, shown: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings({**GOOD, name: value}, ALL)
    assert "S3cret" not in str(error.value)
    assert f"{name}={shown!r} is malformed" in str(error.value)


def test_secrets_are_listed_for_masking_and_kept_out_of_repr() -> None:
    env = {**GOOD, "DATABASE_URL": "postgresql://app:S3cret%2FP4ss@db:26257/ledger"}
    settings = load_settings(env, ALL)
    assert {"S3cret%2FP4ss", "S3cret/P4ss"} <= set(settings.secrets())
    assert "S3cret" not in repr(settings)


def test_a_credential_can_come_from_a_file(tmp_path: Path) -> None:
    url_file = tmp_path / "database-url"
    url_file.write_text("postgresql://app:S3cretP4ss@db:26257/ledger\n")
    env = {**GOOD, "DATABASE_URL": "", "DATABASE_URL_FILE": str(url_file)}
    settings = load_settings(env, ALL)
    assert settings.database_url == "postgresql://app:S3cretP4ss@db:26257/ledger"


def test_credential_file_problems_are_reported(tmp_path: Path) -> None:
    password = tmp_path / "password"
    password.write_text("S3cretP4ss")
    env = {
        **GOOD,
        "DATABASE_URL_FILE": str(password),
        "REDIS_PASSWORD_FILE": str(tmp_path / "missing"),
    }
    with pytest.raises(ConfigError) as error:
        load_settings(env, ALL)
    assert error.value.problems == [
        "DATABASE_URL and DATABASE_URL_FILE are both set; set one of them",
        f"REDIS_PASSWORD_FILE='{tmp_path}/missing' is not readable (No such file or directory); "
        "expected a file holding REDIS_PASSWORD",
    ]


def test_unknown_dependency_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown dependencies"):
        load_settings(GOOD, frozenset({"mainframe"}))


@pytest.fixture()
def ca_file(tmp_path: Path) -> str:
    return str(make_ca(tmp_path, "ca").cert)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            {"DATABASE_SSLMODE": "verify-full"},
            "DATABASE_SSLMODE=verify-full needs DATABASE_SSL_CA_FILE; expected a readable PEM file",
        ),
        (
            {"DATABASE_SSLMODE": "prefer"},
            "DATABASE_SSLMODE='prefer' is unknown; expected one of disable, require, verify-ca, verify-full",
        ),
        (
            {"DATABASE_SSLMODE": "verify-full", "DATABASE_SSL_CA_FILE": "/nonexistent/ca.pem"},
            "DATABASE_SSL_CA_FILE='/nonexistent/ca.pem' is not readable (No such file or directory)",
        ),
        (
            {"DATABASE_URL": "postgresql://db:26257/ledger?sslmode=require"},
            "DATABASE_URL carries sslmode; set DATABASE_SSLMODE",
        ),
        (
            {"REDIS_URL": "rediss://cache:6380/0"},
            "REDIS_URL uses rediss:// (TLS) but REDIS_SSL_CA_FILE is not set",
        ),
        ({"REDIS_USERNAME": "ledger"}, "REDIS_USERNAME is set but REDIS_PASSWORD is not"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "PLAIN"},
            "KAFKA_SASL_MECHANISM='PLAIN' is unknown; expected one of SCRAM-SHA-256, SCRAM-SHA-512",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL"},
            "KAFKA_SECURITY_PROTOCOL=SSL needs KAFKA_SSL_CA_FILE",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "TLS"},
            "KAFKA_SECURITY_PROTOCOL='TLS' is unknown; expected one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL",
        ),
        (
            {"KAFKA_SASL_USERNAME": "ledger"},
            "KAFKA_SASL_USERNAME is set but KAFKA_SECURITY_PROTOCOL=PLAINTEXT does not authenticate",
        ),
    ],
)
def test_transport_security_problems_name_the_variable(
    extra: dict[str, str], expected: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings({**GOOD, **extra}, ALL)
    assert expected in str(error.value)


def test_sasl_needs_mechanism_and_credentials(ca_file: str) -> None:
    env = {**GOOD, "KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SSL_CA_FILE": ca_file}
    with pytest.raises(ConfigError) as error:
        load_settings(env, ALL)
    assert error.value.problems == [
        "KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KAFKA_SASL_MECHANISM; expected one of "
        "SCRAM-SHA-256, SCRAM-SHA-512",
        "KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KAFKA_SASL_USERNAME",
        "KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KAFKA_SASL_PASSWORD",
    ]


def test_a_file_that_is_not_a_certificate_is_refused(tmp_path: Path) -> None:
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("hello\n")
    env = {**GOOD, "REDIS_URL": "rediss://cache:6380/0", "REDIS_SSL_CA_FILE": str(not_pem)}
    with pytest.raises(ConfigError) as error:
        load_settings(env, ALL)
    assert f"REDIS_SSL_CA_FILE='{not_pem}' holds no usable certificate" in str(error.value)


def test_a_client_certificate_needs_its_key(ca_file: str) -> None:
    env = {
        **GOOD,
        "DATABASE_SSLMODE": "verify-full",
        "DATABASE_SSL_CA_FILE": ca_file,
        "DATABASE_SSL_CERT_FILE": ca_file,
    }
    with pytest.raises(ConfigError) as error:
        load_settings(env, ALL)
    assert "DATABASE_SSL_CERT_FILE and DATABASE_SSL_KEY_FILE must be set together" in str(
        error.value
    )


def test_complete_tls_settings_are_read(ca_file: str) -> None:
    env = {
        **GOOD,
        "DATABASE_SSLMODE": "verify-full",
        "DATABASE_SSL_CA_FILE": ca_file,
        "REDIS_URL": "rediss://cache:6380/0",
        "REDIS_SSL_CA_FILE": ca_file,
        "REDIS_USERNAME": "ledger",
        "REDIS_PASSWORD": "secret",
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SSL_CA_FILE": ca_file,
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
        "KAFKA_SASL_USERNAME": "ledger",
        "KAFKA_SASL_PASSWORD": "secret",
    }
    security = load_settings(env, ALL).security
    assert security.database.sslmode == "verify-full"
    assert security.redis.username == "ledger"
    assert security.kafka.sasl_mechanism == "SCRAM-SHA-256"
    assert "secret" not in repr(security)
