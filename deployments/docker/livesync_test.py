"""The dev image's `tar` and `rm`, run as Tilt runs them: a program named tar or rm
(a link to livesync.py), an archive on stdin, real files."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

LIVESYNC = Path(__file__).with_name("livesync.py")


@pytest.fixture()
def tools(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("tar", "rm"):
        (bin_dir / tool).symlink_to(LIVESYNC.resolve())
    return bin_dir


def run(tool: Path, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    # As the #! line does, with the interpreter running these tests.
    return subprocess.run(
        [sys.executable, "-I", str(tool), *args], input=stdin, capture_output=True, check=False
    )


def archive(*members: tuple[str, bytes | None], mode: int = 0o644) -> bytes:
    """A tar like Tilt's: directories (content None) and files, relative names."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as out:
        for name, content in members:
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            if content is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                out.addfile(info)
            else:
                info.size, info.mode = len(content), mode
                out.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def test_tar_replaces_files_and_adds_new_ones(tools: Path, tmp_path: Path) -> None:
    package = tmp_path / "root/app/site-packages/ledger"
    package.mkdir(parents=True)
    (package / "main.py").write_text("old = True\n")
    tarball = archive(
        ("app/site-packages/ledger", None),
        ("app/site-packages/ledger/main.py", b"new = True\n"),
        ("app/site-packages/ledger/postings/__init__.py", b""),
    )
    result = run(tools / "tar", "-C", str(tmp_path / "root"), "-x", "-f", "-", stdin=tarball)
    assert result.returncode == 0, result.stderr
    assert (package / "main.py").read_text() == "new = True\n"
    assert (package / "postings/__init__.py").is_file()
    assert (package / "main.py").stat().st_mtime == 1_700_000_000
    assert oct((package / "main.py").stat().st_mode & 0o777) == oct(0o644)
    assert not [p for p in package.iterdir() if p.name.startswith(".")], "a scratch file is left"


def test_tar_leaves_existing_directories_alone(tools: Path, tmp_path: Path) -> None:
    app = tmp_path / "root/app"
    app.mkdir(parents=True)
    app.chmod(0o700)
    os.utime(app, (5, 5))
    result = run(
        tools / "tar", "-C", str(tmp_path / "root"), "-xf", "-", stdin=archive(("app", None))
    )
    assert result.returncode == 0, result.stderr
    assert (app.stat().st_mode & 0o777, app.stat().st_mtime) == (0o700, 5)


@pytest.mark.parametrize("name", ["../escape.py", "/etc/escape.py", "app/../../escape.py"])
def test_tar_refuses_paths_outside_its_directory(tools: Path, tmp_path: Path, name: str) -> None:
    (tmp_path / "root").mkdir()
    result = run(
        tools / "tar", "-C", str(tmp_path / "root"), "-x", "-f", "-", stdin=archive((name, b"x"))
    )
    assert result.returncode == 2
    assert b"points outside" in result.stderr
    assert not (tmp_path / "escape.py").exists()


@pytest.mark.parametrize(
    "args", [["-c", "-f", "-"], ["-x", "-f", "archive.tar"], ["-x", "-z", "-f", "-"]]
)
def test_tar_rejects_what_it_does_not_support(tools: Path, args: list[str]) -> None:
    result = run(tools / "tar", *args, stdin=archive())
    assert result.returncode == 2
    assert result.stderr.startswith(b"tar: ")


def test_rm_removes_files_and_directories_and_ignores_missing(tools: Path, tmp_path: Path) -> None:
    (tmp_path / "old.py").write_text("")
    (tmp_path / "gone/sub").mkdir(parents=True)
    (tmp_path / "gone/sub/x.py").write_text("")
    result = run(
        tools / "rm",
        "-rf",
        str(tmp_path / "old.py"),
        str(tmp_path / "gone"),
        str(tmp_path / "never"),
    )
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "old.py").exists()
    assert not (tmp_path / "gone").exists()


def test_rm_without_flags_keeps_directories_and_reports_missing(
    tools: Path, tmp_path: Path
) -> None:
    (tmp_path / "kept").mkdir()
    result = run(tools / "rm", str(tmp_path / "kept"), str(tmp_path / "never"))
    assert result.returncode == 1
    assert (tmp_path / "kept").is_dir()
    assert b"is a directory" in result.stderr
    assert b"no such file" in result.stderr


def test_install_links_both_tools_to_itself(tmp_path: Path) -> None:
    script = tmp_path / "lib/livesync.py"
    script.parent.mkdir()
    script.write_bytes(LIVESYNC.read_bytes())
    result = subprocess.run(
        [sys.executable, "-I", str(script), "install", str(tmp_path / "bin")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "bin/tar").resolve() == script.resolve()
    assert (tmp_path / "bin/rm").resolve() == script.resolve()
    assert os.access(script, os.X_OK)
