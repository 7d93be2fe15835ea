"""The requirements a Pants lockfile pins."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


class LockfileError(ValueError):
    pass


@dataclass(frozen=True, order=True)
class LockedRequirement:
    name: str
    version: str


def parse_pants_lock(path: Path, text: str) -> list[LockedRequirement]:
    # A Pants lockfile is JSON after a header of `//` comment lines.
    body = "".join(line for line in text.splitlines(keepends=True) if not line.startswith("//"))
    try:
        document = json.loads(body)
        requirements = {
            LockedRequirement(entry["project_name"], entry["version"])
            for resolve in document["locked_resolves"]
            for entry in resolve["locked_requirements"]
        }
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise LockfileError(f"{path} is not a Pants lockfile ({error!r})") from error
    if not requirements:
        raise LockfileError(f"{path} pins no requirements: nothing to audit")
    return sorted(requirements)


def read_lock_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise LockfileError(f"cannot read the lockfile {path}: {error.strerror}") from error


def read_pants_lock(path: Path) -> list[LockedRequirement]:
    return parse_pants_lock(path, read_lock_text(path))
