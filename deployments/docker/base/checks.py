"""Checks of an assembled root filesystem: no shell or package manager, and every
program's interpreter and every shared library it needs resolve inside it."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from deployments.docker.base.assemble import CA_BUNDLE, LIBDIR, PYLIB, PYTHON
from deployments.docker.base.host import RootfsError
from deployments.docker.elf import is_elf64, resolve_in_root, unresolved_links

# Shells, other script interpreters and package managers in a runtime image are attack
# surface (and invite mutating a running container); the build fails on any of them.
FORBIDDEN_PROGRAMS = frozenset({"sh", "bash", "dash", "busybox", "perl"})
FORBIDDEN_PREFIXES = ("apt", "dpkg")


def problems_with_file(root: Path, path: Path) -> Iterable[str]:
    relative = path.relative_to(root).as_posix()
    with path.open("rb") as handle:
        head = handle.read(128)
    if is_elf64(head):
        for problem in unresolved_links(root, path.read_bytes(), LIBDIR):
            yield f"/{relative}: {problem}"
    # Executable stdlib modules carry #! lines too, but they are imported, never exec'd.
    elif head.startswith(b"#!") and path.stat().st_mode & 0o111 and PYLIB not in relative:
        interpreter = head[2:].split(b"\n", 1)[0].split()[0].decode()
        if resolve_in_root(root, interpreter) is None:
            yield f"/{relative}: script interpreter {interpreter} is missing"


def find_problems(root: Path) -> list[str]:
    problems = [
        f"/{path.relative_to(root)}: shells and package managers must not ship"
        for directory in ("usr/bin", "usr/sbin")
        for path in sorted((root / directory).iterdir())
        if path.name in FORBIDDEN_PROGRAMS or path.name.startswith(FORBIDDEN_PREFIXES)
    ]
    for required in (PYTHON, "/lib64/ld-linux-x86-64.so.2", f"/{CA_BUNDLE}", "/etc/os-release"):
        if resolve_in_root(root, required) is None:
            problems.append(f"{required} is missing")
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            problems.extend(problems_with_file(root, path))
    return problems


def check(root: Path) -> None:
    problems = find_problems(root)
    if problems:
        raise RootfsError("the root filesystem is not usable:\n  " + "\n  ".join(problems))
