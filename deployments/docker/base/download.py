"""Locked .debs from the Debian archive, verified against their sha256 and cached by it."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO

from deployments.docker.base.debian import LockedPackage
from deployments.docker.base.host import RootfsError, sha256_of


def download(url: str, sink: BinaryIO, package: LockedPackage) -> str:
    if not url.startswith(("http://", "https://")):
        raise RootfsError(f"refusing to download {url}: only http(s) mirrors are supported")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=120) as response:  # noqa: S310 (scheme checked)
            while chunk := response.read(1 << 16):
                digest.update(chunk)
                sink.write(chunk)
    except urllib.error.HTTPError as exc:
        hint = ""
        if exc.code == 404:  # the archive drops superseded versions
            hint = "; the archive no longer has this version: refresh with `rootfs.py lock`"
        raise RootfsError(
            f"{package.package} {package.version}: HTTP {exc.code} for {url}{hint}"
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise RootfsError(
            f"{package.package} {package.version}: cannot download {url}: {exc}"
        ) from exc
    return digest.hexdigest()


def fetch(package: LockedPackage, cache_dir: Path, mirror: str) -> Path:
    """The package's .deb from the cache (keyed by sha256), downloading it if needed."""
    cached = cache_dir / f"{package.sha256}.deb"
    if cached.is_file() and sha256_of(cached) == package.sha256:
        return cached
    cache_dir.mkdir(parents=True, exist_ok=True)
    url = package.url(mirror)
    fd, tmp_name = tempfile.mkstemp(dir=cache_dir, prefix=".download-")
    try:
        with os.fdopen(fd, "wb") as sink:
            actual = download(url, sink, package)
        if actual != package.sha256:
            raise RootfsError(
                f"{package.package} {package.version}: sha256 mismatch for {url}\n"
                f"  expected {package.sha256}\n  got      {actual}"
            )
        os.replace(tmp_name, cached)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
    return cached
