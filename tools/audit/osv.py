"""Known advisories for Python packages, from OSV-format data (https://ossf.github.io/osv-schema/).

Two feeds give the same records: OSV's API (`POST <url>/v1/query`, one package version a
call) and a directory of OSV JSON records (a dump such as OSV's PyPI `all.zip`, unpacked).
Whether a record affects a pin, and which release fixes it, is decided here from the
record's `affected` ranges, the same way for both feeds.
"""

from __future__ import annotations

import datetime
import json
import os
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tools.audit.exceptions import normalize_name
from tools.audit.versions import InvalidVersionError, Version, parse_version

OSV_API = "https://api.osv.dev"
ECOSYSTEM = "PyPI"


class AdvisoryFeedError(RuntimeError):
    """The advisory feed could not answer, or answered something the audit cannot use."""


@dataclass(frozen=True)
class Finding:
    """One advisory affecting one pinned version."""

    id: str
    aliases: tuple[str, ...]
    summary: str
    fixed: Version | None  # the lowest release above the pin that fixes it; None: no fix yet

    @property
    def names(self) -> frozenset[str]:
        return frozenset((self.id, *self.aliases))

    def label(self) -> str:
        cves = [alias for alias in self.aliases if alias.startswith("CVE-")]
        return f"{self.id} ({', '.join(cves)})" if cves else self.id


def _parse(text: str) -> Version | None:
    try:
        return parse_version(text)
    except InvalidVersionError:
        return None


@dataclass(frozen=True)
class _Verdict:
    affected: bool
    fix: Version | None  # the fix closing the interval the pin is in
    later_fixes: tuple[Version, ...]  # every fix above the pin, for pins listed by version


def _range_verdict(events: Sequence[Mapping[str, str]], version: Version) -> _Verdict:
    """Whether `version` falls in one OSV ECOSYSTEM range, and what fixes it."""
    keyed = []
    for event in events:
        for kind, text in event.items():
            value = parse_version("0") if text == "0" else _parse(text)
            if value is not None and kind in _EVENT_ORDER:
                keyed.append((value, _EVENT_ORDER[kind], kind))
    # Events come in any order; "0" introduces from the first release.
    keyed.sort()
    affected = False
    fix: Version | None = None
    introduced: Version | None = None
    for value, _, kind in keyed:
        if kind == "introduced":
            introduced = introduced or value
            continue
        if introduced is not None and introduced <= version:
            if kind == "fixed" and version < value:
                affected, fix = True, value
            elif (kind == "last_affected" and version <= value) or (
                kind == "limit" and version < value
            ):
                affected = True
        introduced = None
    if introduced is not None and introduced <= version:
        affected = True
    later = tuple(v for v, _, kind in keyed if kind == "fixed" and v > version)
    return _Verdict(affected, fix, later)


_EVENT_ORDER = {"introduced": 0, "fixed": 1, "last_affected": 2, "limit": 3}


def assess(record: Mapping[str, Any], name: str, version: str) -> Finding | None:
    """The finding when `record` affects `name` at `version`, else None."""
    if record.get("withdrawn"):
        return None
    pinned = parse_version(version)
    key = normalize_name(name)
    affected = False
    # What each affected interval needs; the pin is fixed past all of them.
    needs: list[Version | None] = []
    for entry in record.get("affected") or []:
        package = entry.get("package") or {}
        if package.get("ecosystem") != ECOSYSTEM or normalize_name(package.get("name", "")) != key:
            continue
        listed = pinned in {v for v in map(_parse, entry.get("versions") or []) if v}
        verdicts = [
            _range_verdict(range_.get("events") or [], pinned)
            for range_ in entry.get("ranges") or []
            if range_.get("type") in ("ECOSYSTEM", "SEMVER")
        ]
        in_range = [v for v in verdicts if v.affected]
        if in_range:
            affected = True
            needs += [v.fix for v in in_range]
        elif listed:
            affected = True
            needs.append(min((f for v in verdicts for f in v.later_fixes), default=None))
    if not affected:
        return None
    return Finding(
        id=str(record.get("id", "?")),
        aliases=tuple(sorted(str(a) for a in record.get("aliases") or [])),
        summary=str(record.get("summary") or "").strip(),
        fixed=None if None in needs else max(v for v in needs if v is not None),
    )


def findings(records: Iterable[Mapping[str, Any]], name: str, version: str) -> list[Finding]:
    """Each advisory once, however many records (PYSEC-, GHSA-) describe it."""
    found: list[Finding] = []
    for record in records:
        finding = assess(record, name, version)
        if finding is None or any(finding.names & seen.names for seen in found):
            continue
        found.append(finding)
    return sorted(found, key=lambda f: f.id)


class Feed(Protocol):
    def describe(self) -> str: ...

    def records(
        self, pins: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], list[dict[str, Any]]]:
        """OSV records for each (name, version); raises AdvisoryFeedError."""
        ...


@dataclass(frozen=True)
class ApiFeed:
    url: str
    context: ssl.SSLContext
    timeout: float = 30.0

    def describe(self) -> str:
        return f"OSV API at {self.url}"

    def _query(self, name: str, version: str) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        page_token = None
        while True:
            query: dict[str, Any] = {
                "package": {"name": name, "ecosystem": ECOSYSTEM},
                "version": version,
            }
            if page_token:
                query["page_token"] = page_token
            # The URL is an http(s) URL: feed_from_settings checks it.
            request = urllib.request.Request(  # noqa: S310
                f"{self.url}/v1/query",
                data=json.dumps(query).encode(),
                headers={"Content-Type": "application/json", "Accept": "application/json"},
            )
            try:
                with urllib.request.urlopen(  # noqa: S310
                    request, timeout=self.timeout, context=self.context
                ) as response:
                    answer = json.load(response)
            except urllib.error.HTTPError as error:
                raise AdvisoryFeedError(
                    f"{self.describe()} answered {error.code} for {name} {version}"
                ) from error
            except (urllib.error.URLError, OSError) as error:
                reason = getattr(error, "reason", error)
                raise AdvisoryFeedError(
                    f"{self.describe()} could not be reached ({reason})"
                ) from error
            except json.JSONDecodeError as error:
                raise AdvisoryFeedError(
                    f"{self.describe()} answered {name} {version} with something not JSON"
                ) from error
            if not isinstance(answer, dict) or not isinstance(answer.get("vulns", []), list):
                raise AdvisoryFeedError(f"{self.describe()} gave no 'vulns' list for {name}")
            records += answer.get("vulns", [])
            page_token = answer.get("next_page_token")
            if not page_token:
                return records

    def records(
        self, pins: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], list[dict[str, Any]]]:
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = pool.map(lambda pin: self._query(*pin), pins)
            return dict(zip(pins, answers, strict=True))


@dataclass(frozen=True)
class DirectoryFeed:
    """OSV JSON records under a directory, e.g. OSV's PyPI dump (`all.zip`) unpacked."""

    path: Path
    now: datetime.datetime
    max_age: datetime.timedelta

    def describe(self) -> str:
        return f"OSV records in {self.path}"

    def _load(self) -> dict[str, list[dict[str, Any]]]:
        if not self.path.is_dir():
            raise AdvisoryFeedError(f"{self.path} is not a directory of OSV JSON records")
        by_package: dict[str, list[dict[str, Any]]] = {}
        newest: datetime.datetime | None = None
        count = 0
        for file in sorted(self.path.rglob("*.json")):
            try:
                record = json.loads(file.read_text(encoding="utf-8"))
                modified = datetime.datetime.fromisoformat(
                    str(record["modified"]).replace("Z", "+00:00")
                )
            except (OSError, ValueError, KeyError, TypeError) as error:
                raise AdvisoryFeedError(
                    f"{file} is not an OSV record with a 'modified' time ({error})"
                ) from error
            count += 1
            newest = modified if newest is None else max(newest, modified)
            for entry in record.get("affected") or []:
                package = entry.get("package") or {}
                if package.get("ecosystem") == ECOSYSTEM:
                    key = normalize_name(package.get("name", ""))
                    by_package.setdefault(key, []).append(record)
        if newest is None:
            raise AdvisoryFeedError(f"{self.path} holds no OSV records (*.json)")
        if self.now - newest > self.max_age:
            raise AdvisoryFeedError(
                f"{self.describe()} are stale: the newest of {count} was modified "
                f"{newest:%Y-%m-%d}, more than {self.max_age.days} days ago; download a fresh dump"
            )
        return by_package

    def records(
        self, pins: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], list[dict[str, Any]]]:
        by_package = self._load()
        return {pin: by_package.get(normalize_name(pin[0]), []) for pin in pins}


def feed_from_settings(
    url: str | None,
    directory: Path | None,
    context: ssl.SSLContext,
    now: datetime.datetime,
    max_age_days: int,
    environ: Mapping[str, str] = os.environ,
) -> Feed:
    """--osv-dir (or MERIDIAN_OSV_DIR) wins over --osv-url (or MERIDIAN_OSV_URL, else OSV's API)."""
    directory = directory or (
        Path(environ["MERIDIAN_OSV_DIR"]) if environ.get("MERIDIAN_OSV_DIR") else None
    )
    if directory is not None:
        return DirectoryFeed(directory, now, datetime.timedelta(days=max_age_days))
    url = (url or environ.get("MERIDIAN_OSV_URL") or OSV_API).rstrip("/")
    if not url.startswith(("https://", "http://")):
        raise AdvisoryFeedError(
            f"OSV URL {url!r} must be an http(s) URL such as {OSV_API} "
            "(--osv-url or MERIDIAN_OSV_URL)"
        )
    return ApiFeed(url, context)
