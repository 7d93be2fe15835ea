"""The audit's exceptions file: what may stay behind, why, and until when.

[[python]]                  # a locked requirement allowed to stay below the newest release
name = "ruff"
version = "0.4.10"          # the exception covers this locked version only
reason = "why it cannot move yet"
review_by = 2027-03-01      # a TOML date; the audit fails from that day on

[[advisory]]                # an advisory `make audit` and the scanners (pip-audit, trivy) may pass
id = "CVE-2025-00000"
aliases = ["GHSA-xxxx-xxxx-xxxx"]   # optional: the same advisory in other databases
package = "setuptools"
reason = "why it does not apply or cannot be fixed yet"
review_by = 2027-03-01
"""

from __future__ import annotations

import datetime
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ExceptionsError(ValueError):
    """The exceptions file is malformed or holds an entry past its review date."""


@dataclass(frozen=True)
class PythonException:
    name: str
    version: str
    reason: str
    review_by: datetime.date


@dataclass(frozen=True)
class AdvisoryException:
    id: str
    package: str
    reason: str
    review_by: datetime.date
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Exceptions:
    python: tuple[PythonException, ...] = ()
    advisories: tuple[AdvisoryException, ...] = ()

    def for_advisory(self, package: str, names: Iterable[str]) -> AdvisoryException | None:
        """The entry for this advisory (by its ID or any alias) in this package."""
        key = normalize_name(package)
        wanted = set(names)
        for entry in self.advisories:
            if normalize_name(entry.package) == key and wanted & {entry.id, *entry.aliases}:
                return entry
        return None

    def for_package(self, name: str, version: str) -> PythonException | None:
        key = normalize_name(name)
        for entry in self.python:
            if normalize_name(entry.name) == key and entry.version == version:
                return entry
        return None


def normalize_name(name: str) -> str:
    """PEP 503: `PyYAML`, `pyyaml` and `py_yaml` name one project."""
    return re.sub(r"[-_.]+", "-", name).lower()


_PYTHON_KEYS = {"name": str, "version": str, "reason": str, "review_by": datetime.date}
_ADVISORY_KEYS = {"id": str, "package": str, "reason": str, "review_by": datetime.date}
_OPTIONAL_KEYS = {"aliases"}


def _entry(
    path: Path, table: str, index: int, raw: Any, keys: Mapping[str, type]
) -> dict[str, Any]:
    where = f"{path}: [[{table}]] entry {index + 1}"
    if not isinstance(raw, dict):
        raise ExceptionsError(f"{where} must be a table")
    optional = _OPTIONAL_KEYS if table == "advisory" else set()
    unknown = sorted(set(raw) - set(keys) - optional)
    if unknown:
        raise ExceptionsError(
            f"{where} has unknown keys {unknown}; allowed: {sorted({*keys, *optional})}"
        )
    aliases = raw.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a for a in aliases):
        raise ExceptionsError(f"{where}: 'aliases' must be a list of advisory IDs, got {aliases!r}")
    for key, kind in keys.items():
        if key not in raw:
            raise ExceptionsError(f"{where} is missing '{key}'")
        value = raw[key]
        # A TOML datetime is also a date; review_by must be a plain date (2027-03-01).
        if not isinstance(value, kind) or (
            kind is datetime.date and isinstance(value, datetime.datetime)
        ):
            expected = "a TOML date like 2027-03-01" if kind is datetime.date else "a string"
            raise ExceptionsError(f"{where}: '{key}' must be {expected}, got {value!r}")
        if isinstance(value, str) and not value.strip():
            raise ExceptionsError(f"{where}: '{key}' must not be empty")
    entry = dict(raw)
    if "aliases" in entry:
        entry["aliases"] = tuple(aliases)
    return entry


def parse_exceptions(path: Path, text: str) -> Exceptions:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ExceptionsError(f"{path} is not valid TOML: {error}") from error
    unknown = sorted(set(document) - {"python", "advisory"})
    if unknown:
        raise ExceptionsError(
            f"{path} has unknown tables {unknown}; allowed: [[python]], [[advisory]]"
        )
    for table in ("python", "advisory"):
        if not isinstance(document.get(table, []), list):
            raise ExceptionsError(f"{path}: '{table}' must be an array of tables ([[{table}]])")
    python = tuple(
        PythonException(**_entry(path, "python", i, raw, _PYTHON_KEYS))
        for i, raw in enumerate(document.get("python", []))
    )
    advisories = tuple(
        AdvisoryException(**_entry(path, "advisory", i, raw, _ADVISORY_KEYS))
        for i, raw in enumerate(document.get("advisory", []))
    )
    seen: set[tuple[str, str]] = set()
    for entry in python:
        key = (normalize_name(entry.name), entry.version)
        if key in seen:
            raise ExceptionsError(f"{path}: {entry.name} {entry.version} is listed twice")
        seen.add(key)
    return Exceptions(python, advisories)


def load_exceptions(path: Path) -> Exceptions:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ExceptionsError(
            f"cannot read the exceptions file {path}: {error.strerror}"
        ) from error
    return parse_exceptions(path, text)


def expired(exceptions: Exceptions, today: datetime.date) -> list[str]:
    """One message per entry whose review date has come."""
    messages = [
        f"exception for {e.name} {e.version} was due for review on {e.review_by}: "
        f"upgrade it, or renew the entry with a new reason and date ({e.reason})"
        for e in exceptions.python
        if e.review_by <= today
    ]
    messages += [
        f"advisory exception {e.id} ({e.package}) was due for review on {e.review_by}: "
        f"fix it, or renew the entry with a new reason and date ({e.reason})"
        for e in exceptions.advisories
        if e.review_by <= today
    ]
    return messages
