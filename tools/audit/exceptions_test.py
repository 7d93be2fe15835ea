from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from tools.audit.exceptions import ExceptionsError, expired, load_exceptions, parse_exceptions

PATH = Path("audit-exceptions.toml")
VALID = """
[[python]]
name = "Ruff"
version = "0.4.10"
reason = "the build tool's backend needs it"
review_by = 2027-03-01

[[advisory]]
id = "CVE-2025-47273"
aliases = ["GHSA-5rjg-fvgr-3xxf"]
package = "setuptools"
reason = "not reachable"
review_by = 2027-01-15
"""


def test_parses_entries_and_matches_normalized_names() -> None:
    exceptions = parse_exceptions(PATH, VALID)
    assert exceptions.for_package("ruff", "0.4.10") is not None
    assert exceptions.for_package("RUFF", "0.4.10") is not None
    assert exceptions.for_package("ruff", "0.4.9") is None
    assert exceptions.advisories[0].aliases == ("GHSA-5rjg-fvgr-3xxf",)


def test_entries_expire_on_their_review_date() -> None:
    exceptions = parse_exceptions(PATH, VALID)
    assert expired(exceptions, datetime.date(2026, 12, 31)) == []
    on_advisory_date = expired(exceptions, datetime.date(2027, 1, 15))
    assert len(on_advisory_date) == 1
    assert "CVE-2025-47273" in on_advisory_date[0]
    assert "2027-01-15" in on_advisory_date[0]
    assert len(expired(exceptions, datetime.date(2027, 3, 1))) == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[python]]\nname = "x"\nversion = "1"\nreason = "r"\n', "missing 'review_by'"),
        (
            '[[python]]\nname = "x"\nversion = "1"\nreason = "r"\nreview_by = "2027-01-01"\n',
            "must be a TOML date like 2027-03-01",
        ),
        (
            '[[python]]\nname = "x"\nversion = "1"\nreason = "r"\nreview_by = 2027-01-01T00:00:00\n',
            "must be a TOML date",
        ),
        (
            '[[python]]\nname = "x"\nversion = "1"\nreason = " "\nreview_by = 2027-01-01\n',
            "must not be empty",
        ),
        (
            '[[python]]\nname = "x"\nversion = "1"\nreason = "r"\nreview_by = 2027-01-01\nuntil = 1\n',
            "unknown keys ['until']",
        ),
        ("[[pythn]]\n", "unknown tables ['pythn']"),
        ("python = 1\n", "must be an array of tables"),
        ("[[python]\n", "is not valid TOML"),
        (
            '[[advisory]]\nid = "X"\npackage = "p"\nreason = "r"\nreview_by = 2027-01-01\naliases = "Y"\n',
            "'aliases' must be a list",
        ),
        (VALID + VALID.split("[[advisory]]")[0], "Ruff 0.4.10 is listed twice"),
    ],
)
def test_rejects_malformed_files_naming_the_problem(text: str, message: str) -> None:
    with pytest.raises(ExceptionsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_exceptions(PATH, text)


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ExceptionsError, match="cannot read the exceptions file"):
        load_exceptions(tmp_path / "absent.toml")


def test_the_repository_file_is_valid() -> None:
    exceptions = load_exceptions(Path("3rdparty/audit-exceptions.toml"))
    assert exceptions.for_package("ruff", "0.4.10") is not None
