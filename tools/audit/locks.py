"""Every Python lock the project has, where it is, and the command that re-resolves it.

This table is the one place that lists them: `make audit` reads each for advisories and
freshness; a new lock goes here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tools.audit.lockfile import (
    LockedRequirement,
    LockfileError,
    read_lock_text,
    read_pants_lock,
)


@dataclass(frozen=True)
class Lock:
    path: Path
    what: str
    fix: str  # the command that moves its pins
    python: str  # the interpreter it installs into (Requires-Python of newer releases)

    def read(self, root: Path = Path()) -> list[LockedRequirement]:
        path = root / self.path
        if path.suffix == ".lock":
            return read_pants_lock(path)
        return read_requirements(path)


LOCKS = (
    Lock(
        Path("3rdparty/python/default.lock"), "services, tests, lint tools", "make lock", "3.11.2"
    ),
    Lock(Path("3rdparty/pants/requirements.txt"), "Pants bootstrap", "make tool-locks", "3.9.18"),
    Lock(Path("3rdparty/pants/uv.txt"), "uv for the bootstrap", "make tool-locks", "3.9.18"),
    Lock(Path("3rdparty/tools/pre-commit.txt"), "git hooks", "make tool-locks", "3.11.2"),
    Lock(Path("3rdparty/tools/audit.txt"), "pip-audit", "make tool-locks", "3.11.2"),
    Lock(
        Path("3rdparty/tools/gitleaks.txt"), "gitleaks (make secrets)", "make tool-locks", "3.11.2"
    ),
    Lock(
        Path("3rdparty/tools/ci-rehearsal.txt"),
        "act (make ci-rehearsal)",
        "make tool-locks",
        "3.11.2",
    ),
    Lock(
        Path("tools/images/requirements.txt"),
        "image tools",
        "bump the pin and its hashes in tools/images/requirements.txt",
        "3.11.2",
    ),
    Lock(
        Path("bench/cache_demo/server/requirements.txt"),
        "remote cache demo",
        "make tool-locks",
        "3.11.2",
    ),
)

# `name==version`, optionally with extras, an environment marker or a line continuation.
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*([^\s;\\]+)")


def parse_requirements(path: Path, text: str) -> list[LockedRequirement]:
    """The pins of a hash-pinned requirements file (pip-compile's or uv's output)."""
    pins = set()
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "--")):
            continue
        if line[0].isspace():
            continue  # `--hash=` and `# via` continuation lines
        match = _PIN.match(stripped)
        if match is None:
            raise LockfileError(
                f"{path}:{number}: expected a pin `NAME==VERSION`, got {stripped[:60]!r}"
            )
        pins.add(LockedRequirement(match.group(1), match.group(2)))
    if not pins:
        raise LockfileError(f"{path} pins no requirements: nothing to audit")
    return sorted(pins)


def read_requirements(path: Path) -> list[LockedRequirement]:
    return parse_requirements(path, read_lock_text(path))
