"""`make audit`: every locked Python requirement and base image package at its newest release.

    python3.11 -m tools.audit [check] [--grace-days 30] [--index-url URL] [--no-apt-update]
    python3.11 -m tools.audit ignored-advisories    # scanners' ignore list, one ID a line
    python3.11 -m tools.audit export-requirements   # the lockfile as NAME==VERSION lines
    python3.11 -m tools.audit debian-apt-config --debian-apt DIR  # prints an APT_CONFIG file

A locked requirement passes when it is the index's newest release, when its first newer
release is younger than the grace period, or when the exceptions file lists it with a
reason and a review date still ahead. A base image package passes when it is apt's
candidate, with bookworm-security and bookworm-updates in apt's sources. Anything the
audit cannot ask (index or apt unreachable) fails it.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from tools.audit import apt, pypi
from tools.audit.exceptions import Exceptions, ExceptionsError, expired, load_exceptions
from tools.audit.lockfile import LockfileError, read_pants_lock

DEFAULT_LOCKFILE = Path("3rdparty/python/default.lock")
DEFAULT_PACKAGES_LOCK = Path("deployments/docker/base/packages.lock")
DEFAULT_EXCEPTIONS = Path("3rdparty/audit-exceptions.toml")


class AuditError(Exception):
    pass


def positive_int(text: str) -> int:
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
        choices=["check", "ignored-advisories", "export-requirements", "debian-apt-config"],
    )
    parser.add_argument(
        "--lockfile", type=Path, default=DEFAULT_LOCKFILE, help="Pants lockfile to audit"
    )
    parser.add_argument(
        "--packages-lock", type=Path, default=DEFAULT_PACKAGES_LOCK, help="base image package lock"
    )
    parser.add_argument(
        "--exceptions", type=Path, default=DEFAULT_EXCEPTIONS, help="exceptions file (TOML)"
    )
    parser.add_argument(
        "--grace-days",
        type=positive_int,
        default=30,
        help="days a newer release may exist before the audit fails (default: 30)",
    )
    parser.add_argument(
        "--index-url", help="package index (default: as pip: PIP_INDEX_URL, pip config, PyPI)"
    )
    parser.add_argument(
        "--python-version",
        default=platform.python_version(),
        help="interpreter the lock serves; newer releases whose Requires-Python excludes it "
        "do not count (default: this interpreter's, %(default)s)",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per index request")
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


def audit_python(
    args: argparse.Namespace, exceptions: Exceptions, now: datetime.datetime
) -> list[str]:
    """Prints the Python section; returns failures."""
    requirements = read_pants_lock(args.lockfile)
    location = pypi.locate_index(args.index_url)
    print(
        f"Python: {len(requirements)} requirements in {args.lockfile}, index {location.json_api} ({location.origin})"
    )
    releases = pypi.fetch_all(location, [r.name for r in requirements], args.timeout)
    grace = datetime.timedelta(days=args.grace_days)
    results = [
        pypi.assess(r, releases[r.name], now, grace, exceptions, args.python_version)
        for r in requirements
    ]

    counts = Counter(result.standing for result in results)
    print(
        f"  {len(results)} checked: {counts[pypi.Standing.NEWEST]} at newest, "
        f"{counts[pypi.Standing.WITHIN_GRACE]} within the {args.grace_days}-day grace, "
        f"{counts[pypi.Standing.EXCEPTION]} by exception, "
        f"{len(results) - sum(counts[s] for s in pypi.Standing if s.passes)} failing"
    )
    failures = []
    for result in results:
        if result.standing is not pypi.Standing.NEWEST:
            line = f"  {result.standing.value}: {result.describe(now)}"
            print(line)
            if not result.standing.passes:
                failures.append(line.strip())

    used = {(r.exception.name, r.exception.version) for r in results if r.exception is not None}
    for entry in exceptions.python:
        if (entry.name, entry.version) not in used:
            failures.append(
                f"unused exception: {entry.name} {entry.version} in {args.exceptions} "
                "(the lock no longer pins it, or it is the newest release): remove it"
            )
    return failures


def audit_base_packages(args: argparse.Namespace) -> list[str]:
    """Prints the base image section; returns failures."""
    packages = apt.read_packages_lock(args.packages_lock)
    options = list(args.apt_option)
    if args.debian_apt is not None:
        options += apt.private_debian_apt(args.debian_apt)
    if args.apt_update or args.debian_apt is not None:
        apt.update_lists(options, timeout=600)
    results = apt.assess_debs(packages, options)
    newest = sum(result.at_newest for result in results)
    print(
        f"Base image: {len(results)} packages in {args.packages_lock}, apt sources include "
        f"{', '.join(apt.REQUIRED_SUITES)}{'' if args.apt_update else ' (lists not refreshed)'}"
    )
    print(
        f"  {len(results)} checked: {newest} at apt's newest candidate, {len(results) - newest} failing"
    )
    failures = []
    for result in results:
        if not result.at_newest:
            line = f"  behind: {result.describe()}"
            print(line)
            failures.append(line.strip())
    if len(results) != newest:
        failures.append("re-pin the base image: python3.11 deployments/docker/base/rootfs.py lock")
    return failures


def run_check(args: argparse.Namespace, now: datetime.datetime) -> int:
    exceptions = load_exceptions(args.exceptions)
    failures = expired(exceptions, now.date())
    failures += audit_python(args, exceptions, now)
    failures += audit_base_packages(args)
    if failures:
        print(f"\nAudit FAILED ({len(failures)} problems):", file=sys.stderr)
        for failure in failures:
            print(f"  - {failure}", file=sys.stderr)
        return 1
    print(
        "\nAudit passed: every locked requirement and base package is at its newest release, "
        "within the grace period, or excepted."
    )
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
            for requirement in read_pants_lock(args.lockfile):
                print(f"{requirement.name}=={requirement.version}")
            return 0
        return run_check(args, now)
    except (
        AuditError,
        ExceptionsError,
        LockfileError,
        pypi.PackageIndexError,
        apt.AptError,
    ) as error:
        print(f"\nAudit FAILED, nothing was cleared: {error}", file=sys.stderr)
        return 1
