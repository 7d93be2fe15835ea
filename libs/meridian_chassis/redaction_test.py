import json
import logging
import sys

import pytest

from meridian_chassis.logs import JsonFormatter
from meridian_chassis.redaction import Redactor, mask_url, url_secrets


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://app:pw@db:26257/ledger", "postgresql://app:***@db:26257/ledger"),
        ("postgresql://app@db:26257/ledger", "postgresql://app@db:26257/ledger"),
        ("redis://:p@ss#w/rd@cache:6379/0", "redis://:***@cache:6379/0"),
        ("postgresql://db/l?sslpassword=x&user=a", "postgresql://db/l?sslpassword=***&user=a"),
        ("no scheme:pw@host", "no scheme:***@host"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_url_secrets_include_the_decoded_password() -> None:
    assert url_secrets("postgresql://app:a%40b@db/l?password=cdef") == ["a%40b", "a@b", "cdef"]
    assert url_secrets("postgresql://app@db/l") == []
    assert url_secrets(None) == []


def test_log_lines_mask_secrets_in_any_field_and_in_tracebacks() -> None:
    redact = Redactor(['S3cret"P4ss', "pw"])
    try:
        raise ValueError('cannot connect as app:S3cret"P4ss')
    except ValueError:
        record = logging.makeLogRecord(
            {"msg": "failed", "levelname": "ERROR", "detail": 'S3cret"P4ss'}
        )
        record.exc_info = sys.exc_info()
    line = JsonFormatter("ledger", redact).format(record)
    assert "S3cret" not in line
    entry = json.loads(line)
    assert entry["detail"] == "***"
    assert "app:***" in entry["exception"]


def test_short_values_are_not_treated_as_secrets() -> None:
    assert Redactor(["pw", ""])("a pw b") == "a pw b"
