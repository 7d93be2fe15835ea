from __future__ import annotations

import datetime
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from tools.audit.conftest import serving_index
from tools.audit.exceptions import Exceptions, PythonException
from tools.audit.lockfile import LockedRequirement
from tools.audit.pypi import (
    IndexLocation,
    PackageIndexError,
    Release,
    Standing,
    assess,
    fetch_releases,
    locate_index,
    parse_releases,
    ssl_context,
)
from tools.audit.versions import parse_version

NOW = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)
GRACE = datetime.timedelta(days=30)
NONE = Exceptions()


def release(version: str, days_ago: int, yanked: bool = False) -> Release:
    return Release(parse_version(version), NOW - datetime.timedelta(days=days_ago), yanked)


def project_json(*versions: tuple[str, str, bool]) -> dict[str, Any]:
    """The shape of `/pypi/NAME/json`: release -> its files, each with upload time and yank flag."""
    return {
        "info": {"version": versions[-1][0]},
        "releases": {
            version: [
                {
                    "upload_time_iso_8601": uploaded,
                    "yanked": yanked,
                    "filename": f"x-{version}.whl",
                },
                {"upload_time_iso_8601": uploaded.replace("Z", ".5Z"), "yanked": yanked},
            ]
            for version, uploaded, yanked in versions
        },
    }


HISTORY = [
    release("1.0", 400),
    release("1.1", 200),
    release("1.2rc1", 20),
    release("1.2", 10),
    release("2.0.dev1", 1),
]


def test_newest_final_release_passes() -> None:
    result = assess(LockedRequirement("x", "1.2"), HISTORY, NOW, GRACE, NONE)
    assert result.standing is Standing.NEWEST


def test_newer_release_inside_the_grace_period_passes() -> None:
    result = assess(LockedRequirement("x", "1.1"), HISTORY, NOW, GRACE, NONE)
    assert result.standing is Standing.WITHIN_GRACE
    assert result.newest == "1.2"
    assert result.behind_since == NOW - datetime.timedelta(days=10)


def test_grace_counts_from_the_first_newer_release() -> None:
    # 1.1 appeared 200 days ago; 1.2's recent upload does not restart the clock for 1.0.
    result = assess(LockedRequirement("x", "1.0"), HISTORY, NOW, GRACE, NONE)
    assert result.standing is Standing.BEHIND
    assert "1.0 -> 1.2" in result.describe(NOW)
    assert "200 days" in result.describe(NOW)


def test_zero_grace_fails_any_newer_release() -> None:
    result = assess(LockedRequirement("x", "1.1"), HISTORY, NOW, datetime.timedelta(0), NONE)
    assert result.standing is Standing.BEHIND


def test_yanked_and_pre_releases_are_not_newer() -> None:
    history = [*HISTORY, release("1.3", 300, yanked=True)]
    assert (
        assess(LockedRequirement("x", "1.2"), history, NOW, GRACE, NONE).standing is Standing.NEWEST
    )


def test_releases_for_newer_pythons_do_not_count() -> None:
    newer_python_only = Release(
        parse_version("1.3"), NOW - datetime.timedelta(days=90), False, (">=3.12",)
    )
    history = [*HISTORY, newer_python_only]
    assert (
        assess(LockedRequirement("x", "1.2"), history, NOW, GRACE, NONE).standing is Standing.NEWEST
    )
    on_3_12 = assess(LockedRequirement("x", "1.2"), history, NOW, GRACE, NONE, python="3.12.1")
    assert on_3_12.standing is Standing.BEHIND


def test_exception_covers_its_version_only() -> None:
    exceptions = Exceptions(
        python=(PythonException("X", "1.0", "needs the old API", datetime.date(2027, 1, 1)),)
    )
    excepted = assess(LockedRequirement("x", "1.0"), HISTORY, NOW, GRACE, exceptions)
    assert excepted.standing is Standing.EXCEPTION
    assert excepted.exception is not None
    assert "needs the old API" in excepted.describe(NOW)
    other = assess(LockedRequirement("x", "1.1"), HISTORY, NOW, datetime.timedelta(0), exceptions)
    assert other.standing is Standing.BEHIND


def test_locked_version_missing_or_yanked_fails() -> None:
    missing = assess(LockedRequirement("x", "0.9"), HISTORY, NOW, GRACE, NONE)
    assert missing.standing is Standing.NOT_ON_INDEX
    assert not missing.standing.passes
    yanked = assess(
        LockedRequirement("x", "1.3"), [*HISTORY, release("1.3", 5, yanked=True)], NOW, GRACE, NONE
    )
    assert yanked.standing is Standing.YANKED


def test_parses_the_index_json() -> None:
    document = project_json(
        ("1.0", "2025-01-01T00:00:00Z", False),
        ("1.1", "2026-11-20T10:00:00Z", True),
        ("not-a-version", "2026-11-21T10:00:00Z", False),
    )
    for file in document["releases"]["1.0"]:
        file["requires_python"] = ">=3.12"
    document["releases"]["1.2"] = []  # a release whose files were all deleted
    releases = {str(r.version): r for r in parse_releases("x", document)}
    assert set(releases) == {"1.0", "1.1"}
    assert releases["1.1"].yanked
    assert releases["1.0"].uploaded == datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    assert releases["1.0"].requires_python == (">=3.12",)
    assert not releases["1.0"].installable_on("3.11.2")
    assert releases["1.1"].requires_python == ()


@pytest.mark.parametrize(
    "document",
    [{"info": {}}, {"releases": {}}, {"releases": {"1.0": [{"yanked": False}]}}, []],
)
def test_unusable_index_answers_fail(document: Any) -> None:
    with pytest.raises(PackageIndexError):
        parse_releases("x", document)


def test_locates_the_index_like_pip() -> None:
    config = {"global.index-url": "https://mirror.example/pypi/simple/"}
    assert locate_index(
        "https://a.example/simple", {"PIP_INDEX_URL": "https://b.example/simple"}
    ).json_api == ("https://a.example/pypi")
    from_env = locate_index(
        None, {"PIP_INDEX_URL": "https://b.example/root/simple"}, lambda: config
    )
    assert (from_env.json_api, from_env.origin) == ("https://b.example/root/pypi", "PIP_INDEX_URL")
    from_config = locate_index(None, {}, lambda: config)
    assert from_config.json_api == "https://mirror.example/pypi/pypi"
    assert from_config.origin == "pip config global.index-url"
    default = locate_index(None, {}, dict)
    assert (default.json_api, default.origin) == ("https://pypi.org/pypi", "pip's default")


@pytest.mark.parametrize(
    "url", ["file:///opt/pypi/simple", "https://example.org/packages", "example.org/simple"]
)
def test_index_urls_without_a_json_api_are_refused(url: str) -> None:
    with pytest.raises(PackageIndexError, match="must be an http\\(s\\) URL ending in /simple"):
        locate_index(url, {})


def test_missing_ca_bundle_is_named() -> None:
    with pytest.raises(PackageIndexError, match="PIP_CERT=/nonexistent/ca.pem names no file"):
        ssl_context({"PIP_CERT": "/nonexistent/ca.pem"})


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_index_fails_closed() -> None:
    location = locate_index(f"http://127.0.0.1:{closed_port()}/simple", {})
    with pytest.raises(PackageIndexError, match="could not be reached"):
        fetch_releases(location, "starlette", ssl_context({}), timeout=5)


@pytest.fixture()
def index() -> Iterator[IndexLocation]:
    """A JSON API with one project, `good`; `broken` answers HTML, anything else 404."""
    pages = {
        "/pypi/good/json": json.dumps(
            project_json(("1.0", "2026-01-01T00:00:00Z", False))
        ).encode(),
        "/pypi/broken/json": b"<html>proxy error</html>",
    }
    with serving_index(pages) as url:
        yield locate_index(url, {})


def test_fetches_releases_over_http(index: IndexLocation) -> None:
    releases = fetch_releases(index, "good", ssl_context({}), timeout=5)
    assert [str(r.version) for r in releases] == ["1.0"]


def test_index_errors_fail_closed(index: IndexLocation) -> None:
    with pytest.raises(PackageIndexError, match="answered 404"):
        fetch_releases(index, "absent", ssl_context({}), timeout=5)
    with pytest.raises(PackageIndexError, match="is not JSON"):
        fetch_releases(index, "broken", ssl_context({}), timeout=5)
