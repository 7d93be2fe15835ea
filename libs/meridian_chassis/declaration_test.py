from __future__ import annotations

import re

import pytest

from meridian_chassis.declaration import DeclarationError, parse_declaration


def test_valid_declaration() -> None:
    declaration = parse_declaration("ledger_audit", "port: 8084\nneeds: [redis]\n", "f.yaml")
    assert declaration.name == "ledger-audit"
    assert declaration.port == 8084
    assert declaration.needs == frozenset({"redis"})


def test_needs_default_to_none() -> None:
    assert parse_declaration("fx", "port: 8090\n", "f.yaml").needs == frozenset()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("port: [", "f.yaml: not valid YAML"),
        ("- 8084", "f.yaml: expected a mapping"),
        ("port: '8084'", "`port` must be a number from 1024 to 65535, got '8084'"),
        ("port: 80", "`port` must be a number from 1024 to 65535, got 80"),
        ("needs: [redis]", "`port` must be a number"),
        ("port: 8084\nneeds: [postgres]", "`needs` must be a list of database, redis, kafka"),
        ("port: 8084\nimage: x", "unknown field(s) image"),
    ],
)
def test_malformed_declarations_name_file_and_field(text: str, message: str) -> None:
    with pytest.raises(DeclarationError, match=re.escape(message)):
        parse_declaration("ledger_audit", text, "f.yaml")


def test_packaged_declaration_of_a_real_service() -> None:
    from current_account.main import SERVICE

    assert SERVICE.name == "current-account"
    assert SERVICE.dependencies == frozenset({"database", "redis", "kafka"})
