"""Where each locked requirement stands against the package index's releases.

The index is asked through its JSON API (`<root>/pypi/NAME/json`), which lists every
release with its upload times; it is derived from the index URL pip would use.
"""

from __future__ import annotations

import datetime
import enum
import json
import os
import re
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from tools.audit.exceptions import Exceptions, PythonException
from tools.audit.lockfile import LockedRequirement
from tools.audit.versions import InvalidVersionError, Version, allows, parse_version

PYPI_SIMPLE = "https://pypi.org/simple"


class PackageIndexError(RuntimeError):
    """The index could not answer, or answered something the audit cannot use."""


@dataclass(frozen=True)
class IndexLocation:
    json_api: str  # e.g. https://pypi.org/pypi
    index_url: str
    origin: str  # where the index URL came from, for the report


def _pip_config(python: str) -> dict[str, str]:
    """pip's merged configuration (`pip config list`), or nothing where pip is missing."""
    try:
        result = subprocess.run(
            [python, "-m", "pip", "config", "list"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if result.returncode != 0:
        return {}
    config = {}
    for line in result.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            config[key.strip()] = value.strip().strip("'\"")
    return config


def locate_index(
    explicit: str | None,
    environ: Mapping[str, str] = os.environ,
    pip_config: Callable[[], Mapping[str, str]] = lambda: _pip_config(sys.executable),
) -> IndexLocation:
    """The index pip would install from: --index-url, PIP_INDEX_URL, pip's config, PyPI."""
    if explicit:
        url, origin = explicit, "--index-url"
    elif environ.get("PIP_INDEX_URL"):
        url, origin = environ["PIP_INDEX_URL"], "PIP_INDEX_URL"
    else:
        config = pip_config()
        for key in ("install.index-url", "global.index-url"):
            if config.get(key):
                url, origin = config[key], f"pip config {key}"
                break
        else:
            url, origin = PYPI_SIMPLE, "pip's default"
    url = url.split()[0].rstrip("/")
    if not re.match(r"^https?://", url) or not url.endswith("/simple"):
        raise PackageIndexError(
            f"index URL {url!r} (from {origin}) must be an http(s) URL ending in /simple, "
            "the form whose JSON API is at .../pypi/NAME/json; "
            "pass --index-url https://HOST/.../simple"
        )
    return IndexLocation(url.removesuffix("/simple") + "/pypi", url, origin)


@dataclass(frozen=True)
class Release:
    version: Version
    uploaded: datetime.datetime  # the earliest upload among the release's files
    yanked: bool
    # Requires-Python of each file; empty when a file installs on any interpreter.
    requires_python: tuple[str, ...] = ()

    def installable_on(self, python: str) -> bool:
        return not self.requires_python or any(allows(s, python) for s in self.requires_python)


def parse_releases(name: str, document: Any) -> list[Release]:
    """The releases in a `/pypi/NAME/json` answer; releases without files are skipped."""
    if not isinstance(document, dict) or not isinstance(document.get("releases"), dict):
        raise PackageIndexError(f"the index's JSON for {name} has no 'releases' table")
    releases = []
    for text, files in document["releases"].items():
        if not files:
            continue
        try:
            version = parse_version(text)
        except InvalidVersionError:
            continue  # pre-PEP 440 releases sort below every valid one; pip ignores them too
        try:
            uploaded = min(
                datetime.datetime.fromisoformat(f["upload_time_iso_8601"].replace("Z", "+00:00"))
                for f in files
            )
        except (KeyError, TypeError, ValueError) as error:
            raise PackageIndexError(
                f"the index gave no usable upload time for {name} {text}"
            ) from error
        yanked = all(f.get("yanked", False) for f in files)
        specifiers = {f.get("requires_python") or "" for f in files}
        requires_python = () if "" in specifiers else tuple(sorted(specifiers))
        releases.append(Release(version, uploaded, yanked, requires_python))
    if not releases:
        raise PackageIndexError(f"the index lists no releases of {name}")
    return releases


class Standing(enum.Enum):
    NEWEST = "at newest"
    WITHIN_GRACE = "within grace"
    EXCEPTION = "exception"
    BEHIND = "behind"
    NOT_ON_INDEX = "not on the index"
    YANKED = "yanked"

    @property
    def passes(self) -> bool:
        return self in (Standing.NEWEST, Standing.WITHIN_GRACE, Standing.EXCEPTION)


@dataclass(frozen=True)
class Assessment:
    requirement: LockedRequirement
    standing: Standing
    newest: str
    behind_since: datetime.datetime | None = None
    exception: PythonException | None = None

    def describe(self, now: datetime.datetime) -> str:
        req = self.requirement
        if self.standing is Standing.NEWEST:
            return f"{req.name} {req.version} is the newest release"
        if self.standing is Standing.NOT_ON_INDEX:
            return f"{req.name} {req.version} is not on the index (newest: {self.newest})"
        if self.standing is Standing.YANKED:
            return f"{req.name} {req.version} was yanked from the index (newest: {self.newest})"
        if self.behind_since is None:
            return f"{req.name} {req.version} -> {self.newest}"
        days = (now - self.behind_since).days
        since = f"{self.behind_since:%Y-%m-%d}"
        text = f"{req.name} {req.version} -> {self.newest} (a newer release since {since}, {days} days)"
        if self.exception is not None:
            text += f"; exception until {self.exception.review_by}: {self.exception.reason}"
        return text


def assess(
    requirement: LockedRequirement,
    releases: Sequence[Release],
    now: datetime.datetime,
    grace: datetime.timedelta,
    exceptions: Exceptions,
    python: str = "3.11.2",
) -> Assessment:
    """Where the locked version stands among the final, unyanked releases for `python`."""
    locked = parse_version(requirement.version)
    installable = [
        r for r in releases if r.version.is_final and not r.yanked and r.installable_on(python)
    ]
    newest = max((r.version for r in installable), default=None)
    newest_text = str(newest) if newest is not None else "none"
    matching = [r for r in releases if r.version == locked]
    if not matching:
        return Assessment(requirement, Standing.NOT_ON_INDEX, newest_text)
    if all(r.yanked for r in matching):
        return Assessment(requirement, Standing.YANKED, newest_text)
    newer = [r for r in installable if r.version > locked]
    if not newer:
        return Assessment(requirement, Standing.NEWEST, requirement.version)
    # The clock starts at the first newer release, so frequent releases cannot keep a
    # requirement inside the grace period forever.
    behind_since = min(r.uploaded for r in newer)
    exception = exceptions.for_package(requirement.name, requirement.version)
    if exception is not None:
        return Assessment(requirement, Standing.EXCEPTION, newest_text, behind_since, exception)
    if now - behind_since < grace:
        return Assessment(requirement, Standing.WITHIN_GRACE, newest_text, behind_since)
    return Assessment(requirement, Standing.BEHIND, newest_text, behind_since)


def ssl_context(environ: Mapping[str, str] = os.environ) -> ssl.SSLContext:
    """Trusts the CA bundle pip is told to use (a proxy's, say), else the system's."""
    for variable in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        bundle = environ.get(variable)
        if bundle:
            if not os.path.isfile(bundle):
                raise PackageIndexError(
                    f"{variable}={bundle} names no file; it must be a CA bundle (PEM)"
                )
            return ssl.create_default_context(cafile=bundle)
    return ssl.create_default_context()


def fetch_releases(
    location: IndexLocation, name: str, context: ssl.SSLContext, timeout: float
) -> list[Release]:
    url = f"{location.json_api}/{name}/json"
    # locate_index only lets http(s) URLs through.
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(  # noqa: S310
            request, timeout=timeout, context=context
        ) as response:
            document = json.load(response)
    except urllib.error.HTTPError as error:
        raise PackageIndexError(f"the index answered {error.code} for {url}") from error
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise PackageIndexError(
            f"the index at {location.json_api} could not be reached ({reason})"
        ) from error
    except json.JSONDecodeError as error:
        raise PackageIndexError(f"the index's answer for {url} is not JSON") from error
    return parse_releases(name, document)


def fetch_all(
    location: IndexLocation,
    names: Sequence[str],
    timeout: float,
    environ: Mapping[str, str] = os.environ,
) -> dict[str, list[Release]]:
    context = ssl_context(environ)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = pool.map(lambda name: fetch_releases(location, name, context, timeout), names)
        return dict(zip(names, results, strict=True))
