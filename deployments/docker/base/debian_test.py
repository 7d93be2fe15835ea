"""packages.txt and packages.lock: what is read, and the errors for what cannot be."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployments.docker.base.debian import (
    LockedPackage,
    archive_of,
    lock_text,
    read_lock,
    read_package_names,
)
from deployments.docker.base.host import RootfsError

PACKAGE = LockedPackage(
    "libc6",
    "2.36-9+deb12u13",
    "amd64",
    "debian-security",
    "pool/updates/main/g/glibc/libc6.deb",
    2,
    "ab",
)


def test_the_lock_reads_back_what_was_written(tmp_path: Path) -> None:
    lock = tmp_path / "packages.lock"
    lock.write_text(lock_text([PACKAGE]))
    assert read_lock(lock) == [PACKAGE]


def test_the_committed_lock_covers_packages_txt() -> None:
    here = Path(__file__).parent
    names = read_package_names(here / "packages.txt")
    assert sorted(names) == [package.package for package in read_lock(here / "packages.lock")]


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("package\tversion\n", "the header must be package version architecture"),
        (lock_text([PACKAGE]) + "zlib1g\t1.2\n", "malformed row"),
    ],
)
def test_a_broken_lock_is_named(tmp_path: Path, content: str, error: str) -> None:
    lock = tmp_path / "packages.lock"
    lock.write_text(content)
    with pytest.raises(RootfsError, match=error):
        read_lock(lock)


def test_a_missing_lock_says_how_to_make_it(tmp_path: Path) -> None:
    with pytest.raises(RootfsError, match="create it with `rootfs.py lock`"):
        read_lock(tmp_path / "packages.lock")


def test_package_names_ignore_comments_and_refuse_duplicates(tmp_path: Path) -> None:
    packages = tmp_path / "packages.txt"
    packages.write_text("# runtime\nlibc6  # C library\n\nzlib1g\n")
    assert read_package_names(packages) == ["libc6", "zlib1g"]
    packages.write_text("libc6\nlibc6 # again\n")
    with pytest.raises(RootfsError, match="names a package twice"):
        read_package_names(packages)


def test_archive_of_a_download_url() -> None:
    path = "pool/updates/main/g/glibc/libc6_2.36_amd64.deb"
    url = f"http://deb.debian.org/debian-security/{path}"
    assert archive_of(url, path) == "debian-security"
    assert archive_of(f"http://deb.debian.org/debian/{path}", path) == "debian"
    with pytest.raises(RootfsError, match="neither of the archives"):
        archive_of(f"http://mirror.example/ubuntu/{path}", path)
    with pytest.raises(RootfsError, match="does not end in the archive path"):
        archive_of(url, "pool/other.deb")
