"""The base root filesystem's checks on a root made of the host's own Debian 12 files:
CPython, the libraries it links and the loader, in the merged-/usr layout."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from deployments.docker.base.assemble import CA_BUNDLE, LIBDIR
from deployments.docker.base.checks import check, find_problems
from deployments.docker.base.host import RootfsError
from deployments.docker.elf import elf_links


def install(root: Path, path: str) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(os.path.realpath(path), target)


def python_libraries(path: str) -> tuple[str, ...]:
    return elf_links(Path(os.path.realpath(path)).read_bytes()).needed


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    for name in ("bin", "sbin", "lib", "lib64"):
        (root / "usr" / name).mkdir(parents=True)
        (root / name).symlink_to(f"usr/{name}")
    install(root, "/usr/bin/python3.11")
    dynload = sorted(Path("/usr/lib/python3.11/lib-dynload").glob("_ssl.*.so"))
    install(root, str(dynload[0]))
    for library in {*python_libraries("/usr/bin/python3.11"), *python_libraries(str(dynload[0]))}:
        install(root, f"/{LIBDIR}/{library}")
    install(root, f"/{LIBDIR}/ld-linux-x86-64.so.2")
    (root / "usr/lib64/ld-linux-x86-64.so.2").symlink_to(f"/{LIBDIR}/ld-linux-x86-64.so.2")
    (root / CA_BUNDLE).parent.mkdir(parents=True)
    (root / CA_BUNDLE).write_text("")
    (root / "etc/os-release").write_text("ID=debian\n")
    return root


def test_a_complete_root_has_no_problems(root: Path) -> None:
    assert find_problems(root) == []
    check(root)


def test_each_unresolved_library_is_named_with_the_file_that_needs_it(root: Path) -> None:
    (root / LIBDIR / "libz.so.1").unlink()
    assert "libz.so.1" in python_libraries("/usr/bin/python3.11")
    problems = find_problems(root)
    assert problems == ["/usr/bin/python3.11: needs libz.so.1, which is not in the root filesystem"]
    with pytest.raises(RootfsError, match="libz.so.1"):
        check(root)


def test_the_dynamic_loader_must_resolve(root: Path) -> None:
    (root / LIBDIR / "ld-linux-x86-64.so.2").unlink()
    problems = find_problems(root)
    assert "/lib64/ld-linux-x86-64.so.2 is missing" in problems
    assert any("program interpreter /lib64/ld-linux-x86-64.so.2 is missing" in p for p in problems)


def test_shells_package_managers_and_dangling_script_interpreters_are_refused(root: Path) -> None:
    (root / "usr/bin/dash").write_bytes(b"")
    (root / "usr/bin/apt-get").write_bytes(b"")
    script = root / "usr/bin/tool"
    script.write_text("#!/usr/bin/perl\nprint 1;\n")
    script.chmod(0o755)
    assert find_problems(root) == [
        "/usr/bin/apt-get: shells and package managers must not ship",
        "/usr/bin/dash: shells and package managers must not ship",
        "/usr/bin/tool: script interpreter /usr/bin/perl is missing",
    ]
