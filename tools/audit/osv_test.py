from __future__ import annotations

import datetime
import json
import ssl
from pathlib import Path

import pytest

from tools.audit.conftest import osv_record, serving_osv
from tools.audit.osv import (
    AdvisoryFeedError,
    ApiFeed,
    DirectoryFeed,
    assess,
    feed_from_settings,
    findings,
)
from tools.audit.versions import parse_version

NOW = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)
RANGE = [{"introduced": "0"}, {"fixed": "2.0.1"}]


@pytest.mark.parametrize(
    ("version", "affected"),
    [("1.0", True), ("2.0.0", True), ("2.0.1", False), ("2.1", False)],
)
def test_a_pin_below_the_fix_is_affected_and_one_at_it_is_not(version: str, affected: bool) -> None:
    finding = assess(osv_record("GHSA-1", "Demo_Pkg", RANGE, ["CVE-2026-1"]), "demo-pkg", version)
    assert (finding is not None) == affected
    if finding is not None:
        assert finding.fixed == parse_version("2.0.1")
        assert finding.label() == "GHSA-1 (CVE-2026-1)"


def test_ranges_introduced_later_and_last_affected() -> None:
    record = osv_record("PYSEC-1", "p", [{"introduced": "1.5"}, {"fixed": "1.7"}])
    assert assess(record, "p", "1.4") is None
    assert assess(record, "p", "1.6") is not None
    open_ended = osv_record("PYSEC-2", "p", [{"introduced": "1.0"}, {"last_affected": "1.2"}])
    found = assess(open_ended, "p", "1.2")
    assert found is not None
    assert found.fixed is None  # affected, no fix released
    assert assess(open_ended, "p", "1.3") is None
    never_fixed = osv_record("PYSEC-3", "p", [{"introduced": "0"}])
    assert assess(never_fixed, "p", "99") is not None


def test_the_fix_is_the_one_closing_the_pins_interval() -> None:
    events = [{"introduced": "0"}, {"fixed": "1.2.5"}, {"introduced": "2.0"}, {"fixed": "2.0.3"}]
    record = osv_record("GHSA-2", "p", events)
    first = assess(record, "p", "1.0")
    second = assess(record, "p", "2.0.1")
    assert first is not None
    assert first.fixed == parse_version("1.2.5")
    assert second is not None
    assert second.fixed == parse_version("2.0.3")
    assert assess(record, "p", "1.5") is None


def test_listed_versions_withdrawn_records_and_other_ecosystems() -> None:
    listed = osv_record("GHSA-3", "p", [{"introduced": "5.0"}, {"fixed": "5.1"}])
    listed["affected"][0]["versions"] = ["1.0"]  # type: ignore[index]
    found = assess(listed, "p", "1.0")
    assert found is not None
    assert found.fixed == parse_version("5.1")
    assert (
        assess(osv_record("GHSA-4", "p", RANGE, withdrawn="2026-01-01T00:00:00Z"), "p", "1") is None
    )
    npm = osv_record("GHSA-5", "p", RANGE)
    npm["affected"][0]["package"]["ecosystem"] = "npm"  # type: ignore[index]
    assert assess(npm, "p", "1.0") is None


def test_one_advisory_under_two_ids_counts_once() -> None:
    records = [
        osv_record("PYSEC-2026-1", "p", RANGE, ["CVE-2026-7", "GHSA-x"]),
        osv_record("GHSA-x", "p", RANGE, ["CVE-2026-7", "PYSEC-2026-1"]),
        osv_record("GHSA-y", "p", [{"introduced": "0"}, {"fixed": "3.0"}]),
    ]
    assert [f.id for f in findings(records, "p", "1.0")] == ["GHSA-y", "PYSEC-2026-1"]


def test_api_feed_pages_through_answers() -> None:
    records = [osv_record(f"GHSA-{n}", "p", RANGE) for n in range(5)]
    with serving_osv(records, page_size=2) as url:
        answer = ApiFeed(url, ssl.create_default_context()).records([("p", "1.0"), ("q", "1.0")])
    assert [r["id"] for r in answer[("p", "1.0")]] == [f"GHSA-{n}" for n in range(5)]
    assert answer[("q", "1.0")] == []


def test_unreachable_api_fails_closed() -> None:
    feed = ApiFeed("http://127.0.0.1:9", ssl.create_default_context(), timeout=5)
    with pytest.raises(
        AdvisoryFeedError, match="OSV API at http://127.0.0.1:9 could not be reached"
    ):
        feed.records([("p", "1.0")])


def write_records(directory: Path, *records: dict[str, object]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for record in records:
        (directory / f"{record['id']}.json").write_text(json.dumps(record))
    return directory


def test_directory_feed_reads_records_by_package(tmp_path: Path) -> None:
    path = write_records(tmp_path / "osv", osv_record("GHSA-1", "Demo.Pkg", RANGE))
    feed = DirectoryFeed(path, NOW, datetime.timedelta(days=2))
    answer = feed.records([("demo-pkg", "1.0"), ("other", "1.0")])
    assert [r["id"] for r in answer[("demo-pkg", "1.0")]] == ["GHSA-1"]
    assert answer[("other", "1.0")] == []


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "is not a directory"),
        ("empty", "holds no OSV records"),
        ("stale", "stale: the newest of 1 was modified 2026-11-01"),
        ("broken", "is not an OSV record"),
    ],
)
def test_unusable_directories_fail_closed(tmp_path: Path, setup: str, message: str) -> None:
    path = tmp_path / "osv"
    if setup == "empty":
        path.mkdir()
    elif setup == "stale":
        write_records(path, osv_record("GHSA-1", "p", RANGE, modified="2026-11-01T00:00:00Z"))
    elif setup == "broken":
        path.mkdir()
        (path / "x.json").write_text("{}")
    feed = DirectoryFeed(path, NOW, datetime.timedelta(days=2))
    with pytest.raises(AdvisoryFeedError, match=message):
        feed.records([("p", "1.0")])


def test_feed_settings(tmp_path: Path) -> None:
    context = ssl.create_default_context()
    assert isinstance(feed_from_settings(None, tmp_path, context, NOW, 2, {}), DirectoryFeed)
    from_env = feed_from_settings(None, None, context, NOW, 2, {"MERIDIAN_OSV_DIR": str(tmp_path)})
    assert isinstance(from_env, DirectoryFeed)
    default = feed_from_settings(None, None, context, NOW, 2, {})
    assert isinstance(default, ApiFeed)
    assert default.url == "https://api.osv.dev"
    with pytest.raises(AdvisoryFeedError, match="must be an http\\(s\\) URL"):
        feed_from_settings("ftp://x", None, context, NOW, 2, {})
