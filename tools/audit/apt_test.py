from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tools.audit.apt import (
    DEBIAN_KEYRING,
    AptError,
    LockedDeb,
    assess_debs,
    missing_suites,
    parse_candidates,
    parse_source_suites,
    private_debian_apt,
    read_packages_lock,
    update_lists,
    write_apt_config,
)
from tools.audit.conftest import DebianApt

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

needs_apt = pytest.mark.skipif(shutil.which("apt-cache") is None, reason="needs Debian's apt")


def test_reads_suites_from_apt_policy() -> None:
    assert parse_source_suites(SOURCES) == {"bookworm", "bookworm-security", "bookworm-updates"}
    assert missing_suites(SOURCES) == []
    without_security = "\n".join(line for line in SOURCES.splitlines() if "security" not in line)
    assert missing_suites(without_security) == ["bookworm-security"]


def test_reads_candidates() -> None:
    assert parse_candidates(CANDIDATES) == {"tzdata": "2026f-0+deb12u1", "libc6:i386": None}


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


def apt_candidate(name: str, options: list[str]) -> str:
    apt_cache = shutil.which("apt-cache")
    assert apt_cache is not None
    argv = [apt_cache, *[p for o in options for p in ("-o", o)], "policy", name]
    output = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    candidate = parse_candidates(output)[name.split(":")[0]]
    assert candidate is not None
    return candidate


def only_sources(tmp_path: Path, lines: str, lists: Path) -> list[str]:
    """apt options that make apt read just these sources, from lists already downloaded."""
    sources = tmp_path / "sources.list"
    sources.write_text(lines)
    return [
        f"Dir::Etc::sourcelist={sources}",
        f"Dir::Etc::sourceparts={tmp_path / 'none'}",
        f"Dir::State::Lists={lists}",
        "Dir::Cache::pkgcache=",
        "Dir::Cache::srcpkgcache=",
    ]


def test_real_apt_without_security_sources_fails_naming_them(
    tmp_path: Path, debian_apt: DebianApt
) -> None:
    keyring = f"[signed-by={DEBIAN_KEYRING}] " if debian_apt.options else ""
    line = f"deb {keyring}http://deb.debian.org/debian bookworm main\n"
    options = [*debian_apt.options, *only_sources(tmp_path, line, debian_apt.lists)]
    with pytest.raises(
        AptError, match="lack bookworm-security, bookworm-updates \\(found: bookworm\\)"
    ):
        assess_debs([LockedDeb("libc6", "1", "amd64")], options)


def test_real_apt_compares_with_its_candidates(debian_apt: DebianApt) -> None:
    current = apt_candidate("libc6:amd64", debian_apt.options)
    results = assess_debs(
        [
            LockedDeb("libc6", current, "amd64"),
            LockedDeb("tzdata", "2020a-0", "all"),
            LockedDeb("no-such-package-x", "1", "amd64"),
        ],
        debian_apt.options,
    )
    assert [r.at_newest for r in results] == [True, False, False]
    assert "(apt's candidate)" in results[1].describe()
    assert "apt has no candidate for no-such-package-x:amd64" in results[2].describe()


def test_missing_apt_fails_closed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(AptError, match="apt-cache is not installed"):
        assess_debs([LockedDeb("libc6", "1", "amd64")])


@needs_apt
@pytest.mark.skipif(not DEBIAN_KEYRING.is_file(), reason="needs debian-archive-keyring")
def test_private_debian_apt_state_reads_every_suite(tmp_path: Path) -> None:
    options = private_debian_apt(tmp_path / "apt")
    update_lists(options, timeout=300)
    results = assess_debs([LockedDeb("tzdata", "2020a-0", "all")], options)
    assert results[0].candidate is not None
    assert not results[0].at_newest


@needs_apt
@pytest.mark.skipif(not DEBIAN_KEYRING.is_file(), reason="needs debian-archive-keyring")
def test_apt_config_file_gives_other_tools_the_private_state(tmp_path: Path) -> None:
    config = write_apt_config(tmp_path / "apt.conf", private_debian_apt(tmp_path / "apt"))
    env = {"APT_CONFIG": str(config), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    apt_get = shutil.which("apt-get")
    apt_cache = shutil.which("apt-cache")
    assert apt_get is not None
    assert apt_cache is not None
    subprocess.run([apt_get, "update", "-qq"], env=env, check=True, timeout=300)
    assert list((tmp_path / "apt" / "lists").glob("*bookworm-security*InRelease"))
    policy = subprocess.run(
        [apt_cache, "policy"], env=env, capture_output=True, text=True, check=True
    )
    assert missing_suites(policy.stdout) == []
    assert "/var/lib/dpkg/status" not in policy.stdout


def test_private_debian_apt_needs_the_keyring(tmp_path: Path) -> None:
    with pytest.raises(AptError, match="apt-get install debian-archive-keyring"):
        private_debian_apt(tmp_path, keyring=tmp_path / "absent.gpg")
