from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tools.audit.apt import (
    AptError,
    LockedDeb,
    assess_debs,
    missing_suites,
    parse_candidates,
    parse_package_files,
    parse_policies,
    parse_source_suites,
    private_apt,
    private_debian_apt,
    read_packages_lock,
    update_lists,
    version_lower,
    write_apt_config,
)
from tools.audit.conftest import (
    BOOKWORM,
    DebianApt,
    apt_over,
    debian_archive,
    needs_apt,
    tool,
)

# `apt-cache policy` on a Debian 12 machine (trimmed).
SOURCES = """Package files:
 100 /var/lib/dpkg/status
     release a=now
 500 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
     release v=12,o=Debian,a=oldstable-security,n=bookworm-security,l=Debian-Security,c=main,b=amd64
     origin deb.debian.org
 500 http://deb.debian.org/debian bookworm-updates/main amd64 Packages
     release v=12-updates,o=Debian,a=oldstable-updates,n=bookworm-updates,l=Debian,c=main,b=amd64
     origin deb.debian.org
 500 http://deb.debian.org/debian bookworm/main amd64 Packages
     release v=12.15,o=Debian,a=oldstable,n=bookworm,l=Debian,c=main,b=amd64
     origin deb.debian.org
Pinned packages:
"""
CANDIDATES = """tzdata:
  Installed: 2025b-0+deb12u2
  Candidate: 2026f-0+deb12u1
  Version table:
     2026f-0+deb12u1 500
        500 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
libc6:i386:
  Installed: (none)
  Candidate: (none)
  Version table:
"""


def test_reads_suites_from_apt_policy() -> None:
    assert parse_source_suites(SOURCES) == {"bookworm", "bookworm-security", "bookworm-updates"}
    assert missing_suites(SOURCES) == []
    without_security = "\n".join(line for line in SOURCES.splitlines() if "security" not in line)
    assert missing_suites(without_security) == ["bookworm-security"]


def test_reads_candidates() -> None:
    assert parse_candidates(CANDIDATES) == {"tzdata": "2026f-0+deb12u1", "libc6:i386": None}


def test_reads_where_each_version_comes_from() -> None:
    files = parse_package_files(SOURCES)
    security = "http://deb.debian.org/debian-security bookworm-security/main amd64 Packages"
    assert files[security] == "bookworm-security"
    assert parse_policies(CANDIDATES)["tzdata"].sources == {"2026f-0+deb12u1": [security]}


def test_debian_version_order() -> None:
    needs_apt()
    assert version_lower("1:1.2.13.dfsg-1", "1:1.2.13.dfsg-1+deb12u1")
    assert version_lower("2.36-9+deb12u9", "2.36-9+deb12u10")
    assert not version_lower("1:0.1", "9.9")


def test_reads_the_repository_packages_lock(tmp_path: Path) -> None:
    lock = tmp_path / "packages.lock"
    lock.write_text(
        "# comment\npackage\tversion\tarchitecture\tarchive\n"
        "libc6\t2.36-9+deb12u14\tamd64\tdebian\ntzdata\t2026f-0+deb12u1\tall\tdebian-security\n"
    )
    assert read_packages_lock(lock) == [
        LockedDeb("libc6", "2.36-9+deb12u14", "amd64"),
        LockedDeb("tzdata", "2026f-0+deb12u1", "all"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "header row"),
        ("package\tversion\tarchitecture\n", "pins no packages"),
        ("package\tversion\tarchitecture\nx\t1\n", "row 2"),
    ],
)
def test_rejects_malformed_package_locks(tmp_path: Path, text: str, message: str) -> None:
    lock = tmp_path / "packages.lock"
    lock.write_text(text)
    with pytest.raises(AptError, match=message):
        read_packages_lock(lock)


def test_apt_without_security_sources_fails_naming_them(tmp_path: Path) -> None:
    apt = apt_over(tmp_path, {"bookworm": BOOKWORM["bookworm"]})
    with pytest.raises(
        AptError, match="lack bookworm-security, bookworm-updates \\(found: bookworm\\)"
    ):
        assess_debs([LockedDeb("libc6", "1", "amd64")], apt.options)


def test_apt_compares_with_its_candidates(debian_apt: DebianApt) -> None:
    results = assess_debs(
        [
            LockedDeb("libc6", "2.36-9+deb12u13", "amd64"),
            LockedDeb("tzdata", "2020a-0", "all"),
            LockedDeb("no-such-package-x", "1", "amd64"),
        ],
        debian_apt.options,
    )
    assert [r.candidate for r in results] == ["2.36-9+deb12u13", "2026a-0+deb12u1", None]
    assert [r.at_newest for r in results] == [True, False, False]
    assert results[1].describe() == "tzdata 2020a-0 -> 2026a-0+deb12u1 in bookworm-security"
    assert results[1].from_security
    assert "apt has no candidate for no-such-package-x:amd64" in results[2].describe()


def test_missing_apt_fails_closed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(AptError, match="apt-cache is not installed"):
        assess_debs([LockedDeb("libc6", "1", "amd64")])


def test_unreachable_archive_fails_closed(tmp_path: Path) -> None:
    """apt-get update without --error-on=any exits 0 here and keeps the stale lists."""
    needs_apt()
    options = private_apt(tmp_path, ["deb [trusted=yes] http://127.0.0.1:9/debian bookworm main"])
    with pytest.raises(AptError, match="--error-on=any failed \\(100\\)"):
        update_lists(options, timeout=120)


def test_private_debian_apt_reads_debians_three_suites(tmp_path: Path) -> None:
    keyring = tmp_path / "debian-archive-keyring.gpg"
    keyring.write_bytes(b"")
    options = private_debian_apt(tmp_path / "apt", keyring=keyring)
    sources = (tmp_path / "apt" / "etc" / "sources.list").read_text().splitlines()
    assert sources == [
        f"deb [signed-by={keyring}] http://deb.debian.org/debian bookworm main",
        f"deb [signed-by={keyring}] http://deb.debian.org/debian bookworm-updates main",
        f"deb [signed-by={keyring}] http://deb.debian.org/debian-security bookworm-security main",
    ]
    assert f"Dir::State::status={tmp_path / 'apt' / 'status'}" in options


def test_apt_config_file_gives_other_tools_the_private_state(tmp_path: Path) -> None:
    needs_apt()
    sources = debian_archive(tmp_path / "archive", BOOKWORM)
    config = write_apt_config(tmp_path / "apt.conf", private_apt(tmp_path / "apt", sources))
    env = {"APT_CONFIG": str(config), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    subprocess.run([tool("apt-get"), "update", "-qq"], env=env, check=True, timeout=120)
    policy = subprocess.run(
        [tool("apt-cache"), "policy"], env=env, capture_output=True, text=True, check=True
    )
    assert missing_suites(policy.stdout) == []
    assert "/var/lib/dpkg/status" not in policy.stdout


def test_private_debian_apt_needs_the_keyring(tmp_path: Path) -> None:
    with pytest.raises(AptError, match="apt-get install debian-archive-keyring"):
        private_debian_apt(tmp_path, keyring=tmp_path / "absent.gpg")
