"""The whole audit against advisory feeds the tests create (OSV's API on loopback, a
directory of OSV records), a Debian archive on disk read by a real apt, and a real HTTP
package index for the freshness report."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.audit.apt import private_apt
from tools.audit.conftest import (
    BOOKWORM,
    Deb,
    DebianApt,
    apt_over,
    osv_record,
    serving_index,
    serving_osv,
)
from tools.audit.main import main

NOW = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)
PROJECTS = {
    # name -> (version, upload time) of each release
    "fresh": [("1.0", "2025-01-01T00:00:00Z"), ("1.1", "2026-11-25T00:00:00Z")],
    "stale": [("0.1", "2024-01-01T00:00:00Z"), ("0.2", "2024-02-01T00:00:00Z")],
    "webkit": [("3.0.0", "2025-01-01T00:00:00Z"), ("3.0.1", "2026-11-20T00:00:00Z")],
}
# webkit below 3.0.1 has a published advisory.
ADVISORY = osv_record(
    "GHSA-wk01-0000-0001",
    "webkit",
    [{"introduced": "0"}, {"fixed": "3.0.1"}],
    ["CVE-2026-4242", "PYSEC-2026-42"],
)
UNFIXED = osv_record("GHSA-wk02-0000-0002", "webkit", [{"introduced": "2.0"}])
ZLIB_CHANGELOG = """zlib (1:1.2.13.dfsg-1+deb12u1) bookworm-security; urgency=medium

  * Non-maintainer upload by the LTS Team.
  * Fix CVE-2026-27171 (denial of service) and CVE-2026-85091 (heap overflow).

 -- Debian LTS <lts@debian.invalid>  Sat, 28 Nov 2026 10:00:00 +0000

zlib (1:1.2.13.dfsg-1) unstable; urgency=medium

  * Fix CVE-2022-37434.

 -- Maintainer <zlib@debian.invalid>  Fri, 14 Oct 2022 10:00:00 +0000
"""
ARCHIVE = {
    "bookworm": [*BOOKWORM["bookworm"], Deb("zlib1g", "1:1.2.13.dfsg-1")],
    "bookworm-updates": BOOKWORM["bookworm-updates"],
    "bookworm-security": [
        *BOOKWORM["bookworm-security"],
        Deb("zlib1g", "1:1.2.13.dfsg-1+deb12u1", changelog=ZLIB_CHANGELOG),
    ],
}
EXCEPTION = """
[[advisory]]
id = "CVE-2026-4242"
package = "webkit"
reason = "the affected parser is never called"
review_by = {date}
"""


@pytest.fixture()
def index_url() -> Iterator[str]:
    pages = {
        f"/pypi/{name}/json": json.dumps(
            {"releases": {v: [{"upload_time_iso_8601": t, "yanked": False}] for v, t in releases}}
        ).encode()
        for name, releases in PROJECTS.items()
    }
    with serving_index(pages) as url:
        yield url


@pytest.fixture()
def osv_url() -> Iterator[str]:
    with serving_osv([ADVISORY, UNFIXED]) as url:
        yield url


@pytest.fixture()
def archive(tmp_path: Path) -> DebianApt:
    return apt_over(tmp_path, ARCHIVE)


def write_lock(path: Path, pins: dict[str, str]) -> Path:
    entries = [{"project_name": name, "version": version} for name, version in pins.items()]
    path.write_text(
        "// Pants lockfile\n" + json.dumps({"locked_resolves": [{"locked_requirements": entries}]})
    )
    return path


def write_packages_lock(path: Path, pins: dict[str, tuple[str, str]]) -> Path:
    rows = "".join(f"{name}\t{version}\t{arch}\n" for name, (version, arch) in pins.items())
    path.write_text(f"package\tversion\tarchitecture\n{rows}")
    return path


CURRENT_BASE = {
    "libc6": ("2.36-9+deb12u13", "amd64"),
    "zlib1g": ("1:1.2.13.dfsg-1+deb12u1", "amd64"),
}


class Audit:
    def __init__(self, tmp_path: Path, index_url: str, osv_url: str, archive: DebianApt) -> None:
        self.lock = write_lock(tmp_path / "default.lock", {"fresh": "1.0", "webkit": "3.0.1"})
        self.packages = write_packages_lock(tmp_path / "packages.lock", CURRENT_BASE)
        self.exceptions = tmp_path / "exceptions.toml"
        self.exceptions.write_text("")
        self.index_url = index_url
        self.osv = ["--osv-url", osv_url]
        self.apt = [part for option in archive.options for part in ("--apt-option", option)]

    def __call__(self, *extra: str, now: datetime.datetime = NOW) -> int:
        return main(
            [
                "--lock", str(self.lock),
                "--packages-lock", str(self.packages),
                "--exceptions", str(self.exceptions),
                "--index-url", self.index_url,
                *self.osv,
                *self.apt,
                *extra,
            ],
            now=now,
        )  # fmt: skip


@pytest.fixture()
def audit(tmp_path: Path, index_url: str, osv_url: str, archive: DebianApt) -> Audit:
    return Audit(tmp_path, index_url, osv_url, archive)


def problems(capsys: pytest.CaptureFixture[str]) -> list[str]:
    err = capsys.readouterr().err
    return [line.removeprefix("  - ") for line in err.splitlines() if line.startswith("  - ")]


def test_pins_at_their_fixes_pass(audit: Audit, capsys: pytest.CaptureFixture[str]) -> None:
    assert audit() == 0
    out = capsys.readouterr().out
    assert "2 pins, 0 advisories with a fix, 1 without, 0 excepted" in out
    assert "2 packages: 0 with a security fix available, 0 behind without one" in out
    assert "Audit passed" in out


def test_a_pin_below_a_fix_fails_with_the_command_that_fixes_it(
    audit: Audit, capsys: pytest.CaptureFixture[str]
) -> None:
    write_lock(audit.lock, {"fresh": "1.0", "webkit": "3.0.0"})
    assert audit() == 1
    assert problems(capsys) == [
        f"{audit.lock}: webkit 3.0.0 has GHSA-wk01-0000-0001 (CVE-2026-4242), fixed in 3.0.1: "
        f"re-lock {audit.lock}"
    ]


def test_advisories_without_a_fix_are_reported_not_failed(
    audit: Audit, capsys: pytest.CaptureFixture[str]
) -> None:
    write_lock(audit.lock, {"webkit": "3.0.1"})
    assert audit() == 0
    assert "no fix released yet: " in capsys.readouterr().out


def test_an_exception_passes_an_advisory_until_its_review_date(
    audit: Audit, capsys: pytest.CaptureFixture[str]
) -> None:
    write_lock(audit.lock, {"webkit": "3.0.0"})
    audit.exceptions.write_text(EXCEPTION.format(date="2027-01-01"))
    assert audit() == 0
    assert "excepted until 2027-01-01" in capsys.readouterr().out

    audit.exceptions.write_text(EXCEPTION.format(date="2026-12-01"))
    assert audit() == 1
    (line,) = problems(capsys)
    assert "advisory exception CVE-2026-4242 (webkit) was due for review on 2026-12-01" in line


def test_an_unreachable_feed_fails_in_one_line(
    audit: Audit, capsys: pytest.CaptureFixture[str]
) -> None:
    audit.osv = ["--osv-url", "http://127.0.0.1:9"]
    assert audit() == 1
    assert problems(capsys) == [
        "Python advisories not checked, nothing was cleared: OSV API at http://127.0.0.1:9 "
        "could not be reached ([Errno 111] Connection refused); run where it is reachable, "
        "or pass --osv-dir DIR (MERIDIAN_OSV_DIR) with a fresh OSV dump"
    ]


def test_a_directory_of_osv_records_gives_the_same_verdicts(
    audit: Audit, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = tmp_path / "osv"
    records.mkdir()
    (records / "GHSA-wk01.json").write_text(json.dumps(ADVISORY))
    audit.osv = ["--osv-dir", str(records)]
    write_lock(audit.lock, {"webkit": "3.0.0"})
    assert audit() == 1
    assert "webkit 3.0.0 has GHSA-wk01-0000-0001" in problems(capsys)[0]
    write_lock(audit.lock, {"webkit": "3.0.1"})
    assert audit() == 0
    # A dump the feed stopped updating fails closed.
    assert audit(now=NOW + datetime.timedelta(days=10)) == 1
    assert "are stale" in problems(capsys)[0]


def test_a_base_package_with_a_security_update_fails_naming_its_cves(
    audit: Audit, capsys: pytest.CaptureFixture[str]
) -> None:
    write_packages_lock(audit.packages, {**CURRENT_BASE, "zlib1g": ("1:1.2.13.dfsg-1", "amd64")})
    assert audit() == 1
    assert problems(capsys) == [
        f"{audit.packages}: zlib1g 1:1.2.13.dfsg-1 -> 1:1.2.13.dfsg-1+deb12u1 in "
        "bookworm-security fixes CVE-2026-27171, CVE-2026-85091: "
        "python3.11 deployments/docker/base/rootfs.py lock"
    ]


def test_a_base_package_behind_without_a_fix_is_reported_not_failed(
    audit: Audit, capsys: pytest.CaptureFixture[str]
) -> None:
    write_packages_lock(audit.packages, {**CURRENT_BASE, "libc6": ("2.36-9+deb12u10", "amd64")})
    assert audit() == 0
    out = capsys.readouterr().out
    assert (
        "behind (freshness, report only): libc6 2.36-9+deb12u10 -> 2.36-9+deb12u13 in "
        "bookworm-updates" in out
    )


def test_an_unreachable_archive_fails_closed(
    audit: Audit, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unreachable = apt_over_unreachable(tmp_path)
    audit.apt = [part for option in unreachable for part in ("--apt-option", option)]
    assert audit() == 1
    (line,) = problems(capsys)
    assert line.startswith("base image packages not checked, nothing was cleared: apt-get update")
    assert "--error-on=any failed (100)" in line


def apt_over_unreachable(tmp_path: Path) -> list[str]:
    return private_apt(
        tmp_path / "unreachable",
        [f"deb [trusted=yes] http://127.0.0.1:9/debian {suite} main" for suite in ARCHIVE],
    )


def test_freshness_is_reported_and_fails_nothing(
    audit: Audit, capsys: pytest.CaptureFixture[str]
) -> None:
    write_lock(audit.lock, {"fresh": "1.0", "stale": "0.1", "webkit": "3.0.1"})
    assert audit() == 0
    out = capsys.readouterr().out
    assert f"{audit.lock}: 2 of 3 behind newest" in out
    assert "behind: stale 0.1 -> 0.2" in out
    assert "within grace: fresh 1.0 -> 1.1" in out


def test_an_unreachable_index_only_skips_the_freshness_report(
    audit: Audit, capsys: pytest.CaptureFixture[str]
) -> None:
    audit.index_url = "http://127.0.0.1:9/simple"
    assert audit() == 0
    assert "Freshness not reported (it fails nothing)" in capsys.readouterr().out


def test_exports_requirements_and_ignored_advisories(
    audit: Audit, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--lock", str(audit.lock), "--exceptions", str(audit.exceptions)]
    assert main(["export-requirements", *args], now=NOW) == 0
    assert capsys.readouterr().out.splitlines() == ["fresh==1.0", "webkit==3.0.1"]

    audit.exceptions.write_text(
        '[[advisory]]\nid = "CVE-1"\naliases = ["GHSA-1"]\npackage = "p"\nreason = "r"\n'
        "review_by = 2027-01-01\n"
    )
    assert main(["ignored-advisories", *args], now=NOW) == 0
    assert capsys.readouterr().out.splitlines() == ["CVE-1", "GHSA-1"]
    assert main(["ignored-advisories", *args], now=NOW + datetime.timedelta(days=31)) == 1
    assert "was due for review on 2027-01-01" in capsys.readouterr().err


def test_cooldown_lists_pins_released_within_it(
    audit: Audit, capsys: pytest.CaptureFixture[str]
) -> None:
    write_lock(audit.lock, {"fresh": "1.1", "stale": "0.2", "webkit": "3.0.1"})
    args = ["cooldown", "--lock", str(audit.lock), "--index-url", audit.index_url]
    assert main([*args, "--days", "7"], now=NOW) == 0
    assert capsys.readouterr().out.splitlines() == [
        "1 pins released in the last 7 days:",
        f"  {audit.lock}: fresh 1.1 released 2026-11-25, inside the 7-day cooldown",
    ]
    assert main([*args, "--days", "14"], now=NOW) == 0
    assert "2 pins released in the last 14 days:" in capsys.readouterr().out
