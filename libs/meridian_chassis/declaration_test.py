from __future__ import annotations

import re
from pathlib import Path

import pytest

from meridian_chassis.declaration import (
    DeclarationError,
    load_packaged_declaration,
    parse_declaration,
)
from meridian_chassis.spec import declared_service


def test_valid_declaration() -> None:
    declaration = parse_declaration(
        "ledger_audit", "name: ledger-audit\nport: 8084\nneeds: [redis]\n", "f.yaml"
    )
    assert declaration.name == "ledger-audit"
    assert declaration.port == 8084
    assert declaration.needs == frozenset({"redis"})


def test_needs_default_to_none() -> None:
    assert parse_declaration("fx", "name: fx\nport: 8090\n", "f.yaml").needs == frozenset()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("port: [", "f.yaml: not valid YAML"),
        ("- 8084", "f.yaml: expected a mapping"),
        (
            "name: ledger-audit\nport: '8084'",
            "`port` must be a number from 1024 to 65535, got '8084'",
        ),
        ("name: ledger-audit\nport: 80", "`port` must be a number from 1024 to 65535, got 80"),
        ("needs: [redis]", "`port` must be a number"),
        (
            "name: ledger-audit\nport: 8084\nneeds: [postgres]",
            "`needs` must be a list of database, redis, kafka",
        ),
        ("name: ledger-audit\nport: 8084\nimage: x", "unknown field(s) image"),
        (
            "port: 8084",
            "`name` must be 'ledger-audit', the package 'ledger_audit' in dashes, got None",
        ),
        ("name: ledger_audit\nport: 8084", "`name` must be 'ledger-audit'"),
    ],
)
def test_malformed_declarations_name_file_and_field(text: str, message: str) -> None:
    with pytest.raises(DeclarationError, match=re.escape(message)):
        parse_declaration("ledger_audit", text, "f.yaml")


def test_packaged_declaration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "ledger_audit"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "service.yaml").write_text(
        "name: ledger-audit\nport: 8084\nneeds: [database, kafka]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))

    spec = declared_service("ledger_audit")

    assert spec.name == "ledger-audit"
    assert spec.dependencies == frozenset({"database", "kafka"})


def test_missing_packaged_declaration_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "fx_rates").mkdir()
    (tmp_path / "fx_rates" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(DeclarationError, match=r"fx_rates/service.yaml is missing"):
        load_packaged_declaration("fx_rates")
