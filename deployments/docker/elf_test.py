"""elf.py on real ELF files: the host's CPython and C library, and a shared object built
here with debug info. readelf (binutils, which gcc brings) is the reference."""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from deployments.docker.elf import elf_links, resolve_in_root, strip_elf, unresolved_links

PYTHON = Path(os.path.realpath("/usr/bin/python3.11"))
LIBDIR = "usr/lib/x86_64-linux-gnu"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (apt-get install gcc binutils)")
    return path


def readelf(*args: str) -> str:
    return subprocess.run(
        [tool("readelf"), *args], check=True, capture_output=True, text=True
    ).stdout


def needed_by_readelf(path: Path) -> tuple[str, ...]:
    return tuple(re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", readelf("-d", str(path))))


def interpreter_by_readelf(path: Path) -> str | None:
    found = re.search(r"Requesting program interpreter: (.+?)\]", readelf("-l", str(path)))
    return found.group(1) if found else None


@pytest.mark.parametrize(
    "path",
    [
        PYTHON,
        Path("/usr/lib/x86_64-linux-gnu/libc.so.6"),
        *sorted(Path("/usr/lib/python3.11/lib-dynload").glob("_ssl.*.so")),
        *sorted(Path("/usr/lib/python3.11/lib-dynload").glob("_ctypes.*.so")),
    ],
    ids=lambda path: path.name,
)
def test_links_match_readelf(path: Path) -> None:
    links = elf_links(path.read_bytes())
    assert links.needed == needed_by_readelf(path)
    assert links.interpreter == interpreter_by_readelf(path)


def test_python_needs_the_c_library_and_the_loader() -> None:
    links = elf_links(PYTHON.read_bytes())
    assert "libc.so.6" in links.needed
    assert links.interpreter == "/lib64/ld-linux-x86-64.so.2"


def test_not_elf_is_refused() -> None:
    with pytest.raises(ValueError, match="not a little-endian ELF64"):
        elf_links(b"#!/bin/sh\n")


def copy_into(root: Path, path: str) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(os.path.realpath(path), target)


@pytest.fixture()
def python_root(tmp_path: Path) -> Path:
    """A root with CPython, its libraries and the loader, laid out as on Debian 12: /lib64
    a link into /usr, libraries under the multiarch directory, one through a symlink."""
    root = tmp_path / "root"
    copy_into(root, "/usr/bin/python3.11")
    for library in elf_links(PYTHON.read_bytes()).needed:
        copy_into(root, f"/{LIBDIR}/{library}")
    copy_into(root, f"/{LIBDIR}/ld-linux-x86-64.so.2")
    (root / "lib64").symlink_to("usr/lib64")
    (root / "usr/lib64").mkdir(parents=True)
    (root / "usr/lib64/ld-linux-x86-64.so.2").symlink_to(
        "../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
    )
    # A relative link that climbs out through "..": resolved inside the root, not the host.
    libz = root / LIBDIR / "libz.so.1"
    libz.rename(root / LIBDIR / "libz.so.1.real")
    libz.symlink_to("../../../usr/lib/x86_64-linux-gnu/libz.so.1.real")
    return root


def test_every_link_of_python_resolves_in_a_complete_root(python_root: Path) -> None:
    data = (python_root / "usr/bin/python3.11").read_bytes()
    assert list(unresolved_links(python_root, data, LIBDIR)) == []
    loader = resolve_in_root(python_root, "/lib64/ld-linux-x86-64.so.2")
    assert loader == python_root / LIBDIR / "ld-linux-x86-64.so.2"


def test_a_missing_library_and_loader_are_named(python_root: Path) -> None:
    (python_root / LIBDIR / "libz.so.1.real").unlink()  # the link to it now dangles
    (python_root / LIBDIR / "ld-linux-x86-64.so.2").unlink()
    data = (python_root / "usr/bin/python3.11").read_bytes()
    assert list(unresolved_links(python_root, data, LIBDIR)) == [
        "program interpreter /lib64/ld-linux-x86-64.so.2 is missing",
        "needs libz.so.1, which is not in the root filesystem",
    ]


def test_absolute_links_resolve_inside_the_root_not_on_the_host(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/localtime").symlink_to("/usr/share/zoneinfo/Etc/UTC")  # exists on the host
    assert resolve_in_root(root, "/etc/localtime") is None
    (root / "usr/share/zoneinfo/Etc").mkdir(parents=True)
    (root / "usr/share/zoneinfo/Etc/UTC").write_text("")
    assert resolve_in_root(root, "/etc/localtime") == root / "usr/share/zoneinfo/Etc/UTC"


def test_a_symlink_loop_does_not_resolve(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    assert resolve_in_root(tmp_path, "/a") is None


SOURCE = """
#include <string.h>
static const char message[] = "meridian";
int meridian_answer(int x) { return x * 2 + (int)strlen(message); }
"""


@pytest.fixture()
def debug_library(tmp_path: Path) -> Path:
    source = tmp_path / "answer.c"
    source.write_text(SOURCE)
    library = tmp_path / "libanswer.so"
    subprocess.run(
        [tool("gcc"), "-g", "-O1", "-shared", "-fPIC", "-o", str(library), str(source)], check=True
    )
    return library


def sections(path: Path) -> set[str]:
    return set(re.findall(r"\]\s+(\.\S+)", readelf("-S", "-W", str(path))))


def test_strip_drops_debug_info_and_the_library_still_loads(
    debug_library: Path, tmp_path: Path
) -> None:
    data = debug_library.read_bytes()
    stripped = strip_elf(data)
    assert stripped is not None
    assert len(stripped) < len(data)
    assert ".debug_info" in sections(debug_library)
    out = tmp_path / "libanswer-stripped.so"
    out.write_bytes(stripped)
    kept = sections(out)
    assert not any(name.startswith(".debug") for name in kept)
    assert {".text", ".dynsym", ".dynstr", ".shstrtab"} <= kept
    assert ctypes.CDLL(str(out)).meridian_answer(20) == 48
    assert elf_links(stripped) == elf_links(data)
    assert strip_elf(stripped) is None  # nothing left to drop


def test_strip_keeps_what_the_loader_reads_of_system_libraries(tmp_path: Path) -> None:
    # Debian's packages are stripped but keep a .gnu_debuglink section after the mapped
    # bytes: dropping it must leave the program headers and dynamic section as they were.
    libraries = sorted(Path("/usr/lib/python3.11/lib-dynload").glob("*.so"))[:8]
    assert libraries
    for path in libraries:
        stripped = strip_elf(path.read_bytes())
        if stripped is None:
            continue
        out = tmp_path / path.name
        out.write_bytes(stripped)
        assert len(stripped) < path.stat().st_size
        for flag in ("-l", "-d", "--dyn-syms"):
            assert readelf(flag, "-W", str(out)) == readelf(flag, "-W", str(path)), (path, flag)


def test_strip_ignores_files_that_are_not_elf() -> None:
    assert strip_elf(b"not an ELF file") is None
