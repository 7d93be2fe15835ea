"""Deterministic tarballs: equal trees give equal bytes, whatever the host did to them."""

from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path

import pytest

from deployments.docker.reprotar import TarballError, write_tarball


def make_tree(root: Path, mtime: int) -> Path:
    (root / "usr/bin").mkdir(parents=True)
    (root / "home/meridian").mkdir(parents=True)
    (root / "usr/bin/python3.11").write_bytes(b"\x7fELF" + bytes(range(256)) * 40)
    (root / "usr/bin/python3.11").chmod(0o755)
    (root / "usr/bin/python3").symlink_to("python3.11")
    (root / "etc").mkdir()
    (root / "etc/passwd").write_text("meridian:x:65532:65532::/home/meridian:/usr/sbin/nologin\n")
    os.link(root / "etc/passwd", root / "etc/passwd.copy")
    (root / "tmp").mkdir(mode=0o1777)
    (root / "tmp").chmod(0o1777)
    for path in [root, *root.rglob("*")]:
        os.utime(path, (mtime, mtime), follow_symlinks=False)
    return root


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_tree_gives_identical_bytes(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree", mtime=1)
    write_tarball(tree, tmp_path / "one.tar", mtime=0)
    write_tarball(tree, tmp_path / "two.tar", mtime=0)
    assert (tmp_path / "one.tar").read_bytes() == (tmp_path / "two.tar").read_bytes()


def test_host_times_and_inodes_do_not_matter(tmp_path: Path) -> None:
    first = make_tree(tmp_path / "first", mtime=1_000)
    second = make_tree(tmp_path / "second", mtime=2_000_000)
    write_tarball(first, tmp_path / "first.tar", mtime=0)
    write_tarball(second, tmp_path / "second.tar", mtime=0)
    assert digest(tmp_path / "first.tar") == digest(tmp_path / "second.tar")


def test_entries_carry_only_what_the_tree_defines(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree", mtime=12345)
    out = tmp_path / "out.tar"
    write_tarball(tree, out, mtime=7, owner=lambda rel: 65532 if rel == "home/meridian" else 0)
    with tarfile.open(out) as tar:
        members = {member.name: member for member in tar.getmembers()}
    names = list(members)
    assert names == sorted(names)
    assert names.index("usr") < names.index("usr/bin") < names.index("usr/bin/python3.11")
    assert {member.mtime for member in members.values()} == {7}
    assert {(m.uname, m.gname) for m in members.values()} == {("", "")}
    assert members["home/meridian"].uid == members["home/meridian"].gid == 65532
    assert members["usr/bin/python3.11"].uid == 0
    assert members["tmp"].mode == 0o1777
    assert members["usr/bin/python3.11"].mode == 0o755
    assert members["usr/bin/python3"].issym()
    assert members["usr/bin/python3"].linkname == "python3.11"
    linked = [members["etc/passwd"], members["etc/passwd.copy"]]
    assert linked[0].isreg()
    assert linked[1].islnk()
    assert linked[1].linkname == "etc/passwd"


def test_a_different_mtime_or_content_gives_different_bytes(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree", mtime=1)
    write_tarball(tree, tmp_path / "a.tar", mtime=0)
    write_tarball(tree, tmp_path / "b.tar", mtime=1)
    (tree / "etc/passwd").write_text("changed\n")
    write_tarball(tree, tmp_path / "c.tar", mtime=0)
    assert len({digest(tmp_path / f"{name}.tar") for name in "abc"}) == 3


def test_special_files_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree", mtime=1)
    os.mkfifo(tree / "etc/fifo")
    out = tmp_path / "out.tar"
    with pytest.raises(TarballError, match="/etc/fifo: unsupported file type"):
        write_tarball(tree, out, mtime=0)
    assert not out.exists()
    assert list(tmp_path.glob("*.tar*")) == []
