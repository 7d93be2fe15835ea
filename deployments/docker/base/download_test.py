"""Fetching locked .debs from a real HTTP server (the standard library's, on a free
loopback port) laid out as a Debian archive: verified by sha256, cached by it."""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from deployments.docker.base.debian import LockedPackage
from deployments.docker.base.download import fetch
from deployments.docker.base.host import RootfsError

DEB_PATH = "pool/main/z/zlib/zlib1g_1.2.13_amd64.deb"
CONTENT = b"!<arch>\n" + bytes(range(256)) * 64


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # (base's name)
        pass


@pytest.fixture()
def archive(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A mirror URL template and the directory it serves (as /debian/...)."""
    served = tmp_path / "mirror"
    (served / "debian" / DEB_PATH).parent.mkdir(parents=True)
    (served / "debian" / DEB_PATH).write_bytes(CONTENT)
    handler = functools.partial(QuietHandler, directory=str(served))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{{archive}}/", served
    finally:
        server.shutdown()
        server.server_close()


def locked(sha256: str) -> LockedPackage:
    return LockedPackage("zlib1g", "1.2.13", "amd64", "debian", DEB_PATH, len(CONTENT), sha256)


def test_a_verified_download_is_cached_by_its_sha256(
    archive: tuple[str, Path], tmp_path: Path
) -> None:
    mirror, served = archive
    digest = hashlib.sha256(CONTENT).hexdigest()
    cached = fetch(locked(digest), tmp_path / "cache", mirror)
    assert cached == tmp_path / "cache" / f"{digest}.deb"
    assert cached.read_bytes() == CONTENT
    (served / "debian" / DEB_PATH).unlink()  # the second fetch must not ask the mirror
    assert fetch(locked(digest), tmp_path / "cache", mirror) == cached


def test_a_wrong_sha256_fails_and_leaves_nothing_in_the_cache(
    archive: tuple[str, Path], tmp_path: Path
) -> None:
    mirror, _served = archive
    with pytest.raises(RootfsError, match="zlib1g 1.2.13: sha256 mismatch"):
        fetch(locked("0" * 64), tmp_path / "cache", mirror)
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_version_the_archive_dropped_says_to_relock(
    archive: tuple[str, Path], tmp_path: Path
) -> None:
    mirror, served = archive
    (served / "debian" / DEB_PATH).unlink()
    with pytest.raises(RootfsError, match="HTTP 404 .*refresh with `rootfs.py lock`"):
        fetch(locked("0" * 64), tmp_path / "cache", mirror)


def test_only_http_mirrors_are_used(tmp_path: Path) -> None:
    with pytest.raises(RootfsError, match="only http\\(s\\) mirrors"):
        fetch(locked("0" * 64), tmp_path / "cache", "file:///srv/{archive}/")
