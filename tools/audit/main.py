"""`make audit`: known advisories with a fix fail; what is behind the newest release is reported.

    python3.11 -m tools.audit [check] [--osv-url URL | --osv-dir DIR] [--debian-apt DIR]
    python3.11 -m tools.audit cooldown --days 7     # pins released less than 7 days ago
    python3.11 -m tools.audit ignored-advisories    # scanners' ignore list, one ID a line
    python3.11 -m tools.audit export-requirements   # the services' lock as NAME==VERSION lines
    python3.11 -m tools.audit debian-apt-config --debian-apt DIR  # prints an APT_CONFIG file

Python: every pin of every lock in tools/audit/locks.py against OSV-format advisory data
(OSV's API, or a directory of OSV records). Base image: every package in
deployments/docker/base/packages.lock against apt's candidate across bookworm,
bookworm-updates and bookworm-security; a newer candidate from the security suite, or whose
changelog names CVEs since the pinned version, is an advisory with a fix. Exceptions
(3rdparty/audit-exceptions.toml) pass an advisory until their review date. Data the audit
cannot read (feed, archive) fails it: it never passes on nothing checked.

Freshness (a newer release exists) is reported, for the weekly relock; it fails nothing.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tools.audit import apt, osv, pypi
from tools.audit.changelog import cves_since
from tools.audit.exceptions import (
    AdvisoryException,
    Exceptions,
    ExceptionsError,
    expired,
    load_exceptions,
    normalize_name,
)
from tools.audit.lockfile import LockedRequirement, LockfileError, read_pants_lock
from tools.audit.locks import LOCKS, Lock
from tools.audit.versions import parse_version

DEFAULT_LOCKFILE = Path("3rdparty/python/default.lock")
DEFAULT_PACKAGES_LOCK = Path("deployments/docker/base/packages.lock")
DEFAULT_EXCEPTIONS = Path("3rdparty/audit-exceptions.toml")
REPIN_BASE = "python3.11 deployments/docker/base/rootfs.py lock"


class AuditError(Exception):
    pass


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of days (0 or more), got {text!r}"
        )
    return value


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python3.11 -m tools.audit", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "command",
        nargs="?",
        default="check",
        choices=[
            "check",
            "cooldown",
            "ignored-advisories",
            "export-requirements",
            "debian-apt-config",
        ],
    )
    parser.add_argument(
        "--lock",
        dest="locks",
        type=Path,
        action="append",
        metavar="PATH",
        help="audit this Python lock only (repeatable; default: every lock in tools/audit/locks.py)",
    )
    parser.add_argument(
        "--packages-lock", type=Path, default=DEFAULT_PACKAGES_LOCK, help="base image package lock"
    )
    parser.add_argument(
        "--exceptions", type=Path, default=DEFAULT_EXCEPTIONS, help="exceptions file (TOML)"
    )
    parser.add_argument(
        "--osv-url",
        help="OSV API to ask (default: MERIDIAN_OSV_URL, else https://api.osv.dev)",
    )
    parser.add_argument(
        "--osv-dir",
        type=Path,
        metavar="DIR",
        help="read OSV JSON records from DIR instead (default: MERIDIAN_OSV_DIR), e.g. OSV's "
        "PyPI dump (all.zip) unpacked",
    )
    parser.add_argument(
        "--osv-max-age-days",
        type=non_negative_int,
        default=2,
        help="an --osv-dir whose newest record is older than this fails (default: 2)",
    )
    parser.add_argument(
        "--grace-days",
        type=non_negative_int,
        default=30,
        help="freshness report: days a newer release may exist before it is listed (default: 30)",
    )
    parser.add_argument(
        "--index-url",
        help="package index for the freshness report (default: as pip: PIP_INDEX_URL, pip "
        "config, PyPI)",
    )
    parser.add_argument(
        "--no-freshness",
        dest="freshness",
        action="store_false",
        help="skip the freshness report (it never fails the audit)",
    )
    parser.add_argument(
        "--days",
        type=non_negative_int,
        default=7,
        help="cooldown: list pins whose release is younger than this (default: 7)",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    parser.add_argument(
        "--no-apt-update",
        dest="apt_update",
        action="store_false",
        help="use apt's lists as they are instead of running `apt-get update` first",
    )
    parser.add_argument(
        "--debian-apt",
        type=Path,
        metavar="DIR",
        help="ask a private Debian 12 apt state in DIR (for machines whose apt is not Debian 12's)",
    )
    parser.add_argument(
        "--apt-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="passed to apt as `-o KEY=VALUE` (for example another Dir::Etc::sourcelist)",
    )
    return parser.parse_args(argv)


@dataclass
class Report:
    """Problems fail the audit, one line each, ending in the command that fixes it."""

    problems: list[str] = field(default_factory=list)
    used_advisory_exceptions: set[AdvisoryException] = field(default_factory=set)
    advisories_complete: bool = True

    def problem(self, line: str) -> None:
        self.problems.append(line)


def selected_locks(paths: Sequence[Path] | None) -> list[Lock]:
    if not paths:
        return list(LOCKS)
    known = {lock.path: lock for lock in LOCKS}
    return [
        known.get(path, Lock(path, "given with --lock", f"re-lock {path}", "3.11.2"))
        for path in paths
    ]


def read_locks(locks: Sequence[Lock], report: Report) -> dict[Lock, list[LockedRequirement]]:
    pins = {}
    for lock in locks:
        try:
            pins[lock] = lock.read()
        except LockfileError as error:
            report.advisories_complete = False
            report.problem(f"{error}: fix or regenerate it ({lock.fix})")
    return pins


def audit_python_advisories(
    args: argparse.Namespace,
    pins: dict[Lock, list[LockedRequirement]],
    exceptions: Exceptions,
    now: datetime.datetime,
    report: Report,
) -> None:
    feed = osv.feed_from_settings(
        args.osv_url, args.osv_dir, pypi.ssl_context(), now, args.osv_max_age_days
    )
    unique = sorted({(normalize_name(r.name), r.version) for reqs in pins.values() for r in reqs})
    print(f"Python advisories: {len(unique)} pins in {len(pins)} locks, from {feed.describe()}")
    try:
        records = feed.records(unique)
    except osv.AdvisoryFeedError as error:
        report.advisories_complete = False
        report.problem(
            f"Python advisories not checked, nothing was cleared: {error}; run where it is "
            "reachable, or pass --osv-dir DIR (MERIDIAN_OSV_DIR) with a fresh OSV dump"
        )
        return
    for lock, requirements in pins.items():
        counts = {"fixable": 0, "no fix": 0, "excepted": 0}
        for requirement in requirements:
            key = (normalize_name(requirement.name), requirement.version)
            fixable = []
            for finding in osv.findings(records[key], requirement.name, requirement.version):
                entry = exceptions.for_advisory(requirement.name, finding.names)
                if entry is not None:
                    report.used_advisory_exceptions.add(entry)
                    counts["excepted"] += 1
                    print(
                        f"  excepted until {entry.review_by}: {lock.path}: {requirement.name} "
                        f"{requirement.version} {finding.label()}"
                    )
                elif finding.fixed is None:
                    counts["no fix"] += 1
                    print(
                        f"  no fix released yet: {lock.path}: {requirement.name} "
                        f"{requirement.version} {finding.label()} {finding.summary}"
                    )
                else:
                    fixable.append(finding)
            if fixable:
                counts["fixable"] += len(fixable)
                target = max(f.fixed for f in fixable if f.fixed is not None)
                report.problem(
                    f"{lock.path}: {requirement.name} {requirement.version} has "
                    f"{', '.join(f.label() for f in fixable)}, fixed in {target}: {lock.fix}"
                )
        print(
            f"  {lock.path} ({lock.what}): {len(requirements)} pins, {counts['fixable']} "
            f"advisories with a fix, {counts['no fix']} without, {counts['excepted']} excepted"
        )


def audit_base_packages(args: argparse.Namespace, exceptions: Exceptions, report: Report) -> None:
    """Base image packages: a newer security candidate, or CVEs in the changelog since the
    pin, is an advisory with a fix; any other newer candidate is freshness."""
    try:
        packages = apt.read_packages_lock(args.packages_lock)
        options = list(args.apt_option)
        if args.debian_apt is not None:
            options += apt.private_debian_apt(args.debian_apt)
        if args.apt_update or args.debian_apt is not None:
            apt.update_lists(options, timeout=600)
        results = apt.assess_debs(packages, options)
    except apt.AptError as error:
        report.advisories_complete = False
        report.problem(f"base image packages not checked, nothing was cleared: {error}")
        return
    print(
        f"Base image: {len(results)} packages in {args.packages_lock} against apt's candidates "
        f"({', '.join(apt.REQUIRED_SUITES)}){'' if args.apt_update else ', lists not refreshed'}"
    )
    advisories = behind = 0
    for result in results:
        if result.at_newest:
            continue
        if result.candidate is None:
            report.problem(f"{args.packages_lock}: {result.describe()}: {REPIN_BASE}")
            continue
        try:
            if apt.version_lower(result.candidate, result.package.version):
                report.problem(
                    f"{args.packages_lock}: {result.package.name} {result.package.version} is "
                    f"newer than apt's candidate {result.candidate}: refresh apt's lists "
                    "(apt-get update) or check its sources"
                )
                continue
            text = apt.changelog(result.package, result.candidate, options)
        except apt.AptError as error:
            report.advisories_complete = False
            report.problem(
                f"{args.packages_lock}: {result.describe()}: its changelog could not be read, "
                f"so its fixes are unknown ({error}): {REPIN_BASE}"
            )
            continue
        cves = cves_since(text, result.package.version, apt.version_lower) if text else []
        if not cves and not result.from_security:
            behind += 1
            print(f"  behind (freshness, report only): {result.describe()}: {REPIN_BASE}")
            continue
        entries = [exceptions.for_advisory(result.package.name, [cve]) for cve in cves]
        if cves and all(entries):
            report.used_advisory_exceptions.update(e for e in entries if e is not None)
            print(f"  excepted: {result.describe()} ({', '.join(cves)})")
            continue
        advisories += 1
        fixes = ", ".join(cves) if cves else "a security update (no CVE named in its changelog)"
        report.problem(f"{args.packages_lock}: {result.describe()} fixes {fixes}: {REPIN_BASE}")
    print(
        f"  {len(results)} packages: {advisories} with a security fix available, "
        f"{behind} behind without one"
    )


def report_freshness(
    args: argparse.Namespace,
    pins: dict[Lock, list[LockedRequirement]],
    exceptions: Exceptions,
    now: datetime.datetime,
    report: Report,
) -> None:
    """Pins behind the index's newest release: listed for the relock, failing nothing."""
    names = sorted({r.name for reqs in pins.values() for r in reqs}, key=normalize_name)
    try:
        location = pypi.locate_index(args.index_url)
        releases = pypi.fetch_all(location, names, args.timeout)
    except pypi.PackageIndexError as error:
        print(f"Freshness not reported (it fails nothing): {error}")
        return
    print(f"Freshness (report only; the weekly relock moves these): index {location.json_api}")
    grace = datetime.timedelta(days=args.grace_days)
    used = set()
    for lock, requirements in pins.items():
        behind = []
        for requirement in requirements:
            result = pypi.assess(
                requirement, releases[requirement.name], now, grace, exceptions, lock.python
            )
            if result.exception is not None:
                used.add((normalize_name(result.exception.name), result.exception.version))
            if result.standing is not pypi.Standing.NEWEST:
                behind.append(f"{result.standing.value}: {result.describe(now)}")
        print(f"  {lock.path}: {len(behind)} of {len(requirements)} behind newest ({lock.fix})")
        for line in behind:
            print(f"    {line}")
    if set(LOCKS) <= set(pins):
        for entry in exceptions.python:
            if (normalize_name(entry.name), entry.version) not in used:
                report.problem(
                    f"unused exception: {entry.name} {entry.version} in {args.exceptions} "
                    "(no lock pins it below the newest release): remove the entry"
                )


def run_cooldown(args: argparse.Namespace, now: datetime.datetime) -> int:
    """Pins whose release is younger than the cooldown, for the relock's reviewers: Pants'
    generate-lockfiles cannot leave such releases out itself."""
    report = Report()
    pins = read_locks(selected_locks(args.locks), report)
    if report.problems:
        raise AuditError("; ".join(report.problems))
    names = sorted({r.name for reqs in pins.values() for r in reqs}, key=normalize_name)
    releases = pypi.fetch_all(pypi.locate_index(args.index_url), names, args.timeout)
    cutoff = now - datetime.timedelta(days=args.days)
    young = []
    for lock, requirements in pins.items():
        for requirement in requirements:
            wanted = parse_version(requirement.version)
            uploaded = [r.uploaded for r in releases[requirement.name] if r.version == wanted]
            if uploaded and min(uploaded) > cutoff:
                young.append(
                    f"{lock.path}: {requirement.name} {requirement.version} released "
                    f"{min(uploaded):%Y-%m-%d}, inside the {args.days}-day cooldown"
                )
    print(f"{len(young)} pins released in the last {args.days} days" + (":" if young else "."))
    for line in young:
        print(f"  {line}")
    return 0


def run_check(args: argparse.Namespace, now: datetime.datetime) -> int:
    exceptions = load_exceptions(args.exceptions)
    report = Report()
    for message in expired(exceptions, now.date()):
        report.problem(f"{args.exceptions}: {message}")
    pins = read_locks(selected_locks(args.locks), report)
    audit_python_advisories(args, pins, exceptions, now, report)
    audit_base_packages(args, exceptions, report)
    if report.advisories_complete and not args.locks:
        for entry in exceptions.advisories:
            if entry not in report.used_advisory_exceptions:
                report.problem(
                    f"unused advisory exception {entry.id} ({entry.package}) in "
                    f"{args.exceptions}: the feed reports it for no pinned version any "
                    "more: remove the entry"
                )
    if args.freshness:
        report_freshness(args, pins, exceptions, now, report)
    if report.problems:
        print(f"\nAudit FAILED ({len(report.problems)} problems):", file=sys.stderr)
        for line in report.problems:
            print(f"  - {line}", file=sys.stderr)
        return 1
    print("\nAudit passed: no known advisory with a fix in any lock or base package.")
    return 0


def main(argv: Sequence[str] | None = None, now: datetime.datetime | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    now = now or datetime.datetime.now(datetime.UTC)
    try:
        if args.command == "ignored-advisories":
            exceptions = load_exceptions(args.exceptions)
            problems = expired(exceptions, now.date())
            if problems:
                raise AuditError("\n".join(problems))
            for advisory in exceptions.advisories:
                for advisory_id in (advisory.id, *advisory.aliases):
                    print(advisory_id)
            return 0
        if args.command == "debian-apt-config":
            if args.debian_apt is None:
                raise AuditError("debian-apt-config needs --debian-apt DIR")
            options = apt.private_debian_apt(args.debian_apt)
            print(apt.write_apt_config(args.debian_apt / "apt.conf", options))
            return 0
        if args.command == "export-requirements":
            for requirement in read_pants_lock((args.locks or [DEFAULT_LOCKFILE])[0]):
                print(f"{requirement.name}=={requirement.version}")
            return 0
        if args.command == "cooldown":
            return run_cooldown(args, now)
        return run_check(args, now)
    except (
        AuditError,
        ExceptionsError,
        LockfileError,
        osv.AdvisoryFeedError,
        pypi.PackageIndexError,
        apt.AptError,
    ) as error:
        print(f"\nAudit FAILED, nothing was cleared: {error}", file=sys.stderr)
        return 1
