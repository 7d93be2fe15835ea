import pytest

from meridian_chassis.config import ConfigError, load_settings

ALL = frozenset({"database", "redis", "kafka"})
GOOD = {
    "DATABASE_URL": "postgresql://meridian@db:26257/ledger",
    "REDIS_URL": "redis://cache:6379/0",
    "KAFKA_BOOTSTRAP_SERVERS": "kafka-0:9092,kafka-1:9092",
}


def test_defaults_when_nothing_is_required() -> None:
    settings = load_settings({})
    assert settings.port == 8080
    assert settings.log_level == "INFO"
    assert settings.database_url is None
    assert settings.kafka_bootstrap_servers == ()


def test_reads_every_setting() -> None:
    env = {**GOOD, "PORT": "9000", "LOG_LEVEL": "debug", "SHUTDOWN_GRACE_SECONDS": "2.5"}
    settings = load_settings(env, ALL)
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


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("PORT", "http", "an integer from 1 to 65535"),
        ("PORT", "70000", "an integer from 1 to 65535"),
        ("LOG_LEVEL", "LOUD", "one of DEBUG, INFO"),
        ("DATABASE_URL", "mysql://db/ledger", "a URL like postgresql://"),
        ("DATABASE_URL", "postgresql://db:port/ledger", "a URL like postgresql://"),
        ("REDIS_URL", "cache:6379", "a URL like redis://"),
        ("KAFKA_BOOTSTRAP_SERVERS", "kafka", "comma-separated host:port pairs"),
        ("KAFKA_BOOTSTRAP_SERVERS", "kafka:99999", "comma-separated host:port pairs"),
        ("SHUTDOWN_GRACE_SECONDS", "-1", "a number of seconds > 0"),
        ("SHUTDOWN_DELAY_SECONDS", "soon", "a number of seconds >= 0"),
        ("READINESS_TIMEOUT_SECONDS", "0", "a number of seconds > 0"),
    ],
)
def test_malformed_value_names_the_variable_and_form(name: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings({**GOOD, name: value}, ALL)
    [problem] = error.value.problems
    assert problem.startswith(f"{name}={value!r} is malformed; expected {expected}")


def test_reports_every_problem_at_once() -> None:
    with pytest.raises(ConfigError) as error:
        load_settings({"PORT": "x", "LOG_LEVEL": "y"}, frozenset({"redis"}))
    assert len(error.value.problems) == 3


def test_unknown_dependency_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown dependencies"):
        load_settings(GOOD, frozenset({"mainframe"}))
