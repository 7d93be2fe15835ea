"""Deterministic tarballs of a directory tree: the same tree gives the same bytes.

Entries are sorted by path (a parent before its children) and carry only what the tree
defines: the mode bits, a fixed mtime, an owner chosen by the caller, and nothing of
the host (no user or group names, no inode numbers, no access times). Files that are
hard links of each other are stored once, the others as links to the first.

Standard library only: layers.py runs this inside image builds, on the base image's
interpreter.
"""

from __future__ import annotations

import os
import stat
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path


class TarballError(Exception):
    """The tree holds something a tarball here cannot carry."""


def root_owned(_relative: str) -> int:
    return 0


def sorted_entries(root: Path) -> list[str]:
    """Every path under `root` (root excluded), relative, in tar order."""
    found: list[str] = []
    for directory, dirnames, filenames in os.walk(root):
        base = Path(directory).relative_to(root)
        found.extend((base / name).as_posix() for name in (*dirnames, *filenames))
    return sorted(found)  # a parent sorts before its children


def tar_entry(
    root: Path,
    relative: str,
    mtime: int,
    owner: Callable[[str], int],
    seen: dict[tuple[int, int], str],
) -> tarfile.TarInfo:
    """A TarInfo carrying only what the tree defines: no host owners, times or names."""
    status = (root / relative).lstat()
    info = tarfile.TarInfo(relative)
    info.mtime = mtime
    info.mode = stat.S_IMODE(status.st_mode)
    info.uid = info.gid = owner(relative)
    info.uname = info.gname = ""
    if stat.S_ISDIR(status.st_mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(status.st_mode):
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(root / relative)
    elif not stat.S_ISREG(status.st_mode):
        raise TarballError(f"/{relative}: unsupported file type")
    elif (status.st_dev, status.st_ino) in seen:
        info.type, info.linkname = tarfile.LNKTYPE, seen[(status.st_dev, status.st_ino)]
    else:
        seen[(status.st_dev, status.st_ino)] = relative
        info.size = status.st_size
    return info


def write_tarball(
    root: Path, output: Path, mtime: int, owner: Callable[[str], int] = root_owned
) -> None:
    """Write the tree at `root` to `output` (whole or not at all), every entry's mtime
    `mtime` and its owner (uid and gid) `owner(relative path)`."""
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".partial")
    seen: dict[tuple[int, int], str] = {}
    try:
        with (
            os.fdopen(fd, "wb") as sink,
            tarfile.open(fileobj=sink, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            for relative in sorted_entries(root):
                info = tar_entry(root, relative, mtime, owner, seen)
                if info.isreg():
                    with (root / relative).open("rb") as content:
                        tar.addfile(info, content)
                else:
                    tar.addfile(info)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, output)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
