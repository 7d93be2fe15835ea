from __future__ import annotations

import pytest

from tools.audit.versions import InvalidVersionError, allows, parse_version

# Each list is in ascending order (PEP 440's own examples and the index's spellings).
ORDERED = [
    "1.0.dev456",
    "1.0a1",
    "1.0a2.dev456",
    "1.0a12.dev456",
    "1.0a12",
    "1.0b1.dev456",
    "1.0b2",
    "1.0b2.post345.dev456",
    "1.0b2.post345",
    "1.0rc1.dev456",
    "1.0rc1",
    "1.0",
    "1.0.post456.dev34",
    "1.0.post456",
    "1.0.1",
    "1.1.dev1",
    "1.10.0",
    "2026.9.1",
    "1!0.1",
]


def test_orders_versions_like_pep_440() -> None:
    parsed = [parse_version(text) for text in ORDERED]
    assert parsed == sorted(parsed)
    assert len(set(parsed)) == len(parsed)


def test_trailing_zeros_and_spelling_do_not_matter() -> None:
    assert parse_version("1.0") == parse_version("1.0.0")
    assert parse_version("1.0-1") == parse_version("1.0.post1")
    assert parse_version("1.0RC1") == parse_version("1.0rc1")
    assert str(parse_version(" 6.0.12.20261122 ")) == "6.0.12.20261122"


def test_date_versions_compare_numerically() -> None:
    assert parse_version("2026.10.19.post1") > parse_version("2026.10.19")
    assert parse_version("6.0.12.20261122") > parse_version("6.0.12.20250822")


@pytest.mark.parametrize(
    ("text", "final"),
    [
        ("1.0", True),
        ("1.0.post1", True),
        ("1.0rc1", False),
        ("1.0.dev1", False),
        ("1.0.post1.dev1", False),
    ],
)
def test_final_releases(text: str, final: bool) -> None:
    assert parse_version(text).is_final is final


@pytest.mark.parametrize("text", ["", "latest", "1.0+local", "1..0", "1.0-beta-x"])
def test_rejects_what_is_not_a_version(text: str) -> None:
    with pytest.raises(InvalidVersionError, match="not a PEP 440 version"):
        parse_version(text)


@pytest.mark.parametrize(
    ("requires_python", "admits_3_11_2"),
    [
        (None, True),
        ("", True),
        (">=3.11", True),
        (">=3.12", False),
        (">=3.8, <4", True),
        ("<3.11", False),
        ("!=3.0.*,!=3.1.*,!=3.2.*,>=2.7", True),
        ("!=3.11.*", False),
        ("==3.11.*", True),
        ("~=3.10", True),
        ("~=3.12", False),
        (">3.11", True),
        ("<=3.11", False),
        (">=3.11.3", False),
        ("not a specifier", True),
    ],
)
def test_requires_python(requires_python: str | None, admits_3_11_2: bool) -> None:
    assert allows(requires_python, "3.11.2") is admits_3_11_2
