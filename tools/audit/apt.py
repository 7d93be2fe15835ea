"""Where each base image package stands against apt's newest candidate.

apt resolves candidates across every suite in its sources; a candidate is only the
newest safe version when the security and point-release suites are among them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REQUIRED_SUITES = ("bookworm", "bookworm-security", "bookworm-updates")
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
DEBIAN_SOURCES = (
    ("http://deb.debian.org/debian", "bookworm"),
    ("http://deb.debian.org/debian", "bookworm-updates"),
    ("http://deb.debian.org/debian-security", "bookworm-security"),
)


class AptError(RuntimeError):
    """apt could not answer, or its sources cannot give the newest safe versions."""


@dataclass(frozen=True, order=True)
class LockedDeb:
    name: str
    version: str
    architecture: str


@dataclass(frozen=True)
class DebAssessment:
    package: LockedDeb
    candidate: str | None

    @property
    def at_newest(self) -> bool:
        return self.candidate == self.package.version

    def describe(self) -> str:
        p = self.package
        if self.candidate is None:
            return f"{p.name} {p.version}: apt has no candidate for {p.name}:{p.architecture}"
        if self.at_newest:
            return f"{p.name} {p.version} is apt's candidate"
        return f"{p.name} {p.version} -> {self.candidate} (apt's candidate)"


def read_packages_lock(path: Path) -> list[LockedDeb]:
    """The base image's lock: `#` comments, a header row, then tab-separated rows."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise AptError(f"cannot read {path}: {error.strerror}") from error
    rows = [line.split("\t") for line in lines if line.strip() and not line.startswith("#")]
    if not rows or rows[0][:3] != ["package", "version", "architecture"]:
        raise AptError(f"{path} has no 'package<TAB>version<TAB>architecture' header row")
    packages = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) < 3:
            raise AptError(f"{path}: row {number} has fewer than 3 tab-separated fields")
        packages.append(LockedDeb(row[0], row[1], row[2]))
    if not packages:
        raise AptError(f"{path} pins no packages: nothing to audit")
    return packages


def parse_source_suites(policy: str) -> set[str]:
    """Suites (`n=` codenames) of the package files in `apt-cache policy`'s output."""
    return set(re.findall(r"^\s+release\b.*\bn=([^,\s]+)", policy, re.MULTILINE))


def missing_suites(policy: str) -> list[str]:
    suites = parse_source_suites(policy)
    return [suite for suite in REQUIRED_SUITES if suite not in suites]


def parse_candidates(policy: str) -> dict[str, str | None]:
    """Package -> candidate version from `apt-cache policy NAME...`; None for '(none)'."""
    candidates: dict[str, str | None] = {}
    current = None
    for line in policy.splitlines():
        header = re.match(r"^(\S+):$", line)
        if header:
            current = header.group(1)
            continue
        candidate = re.match(r"^\s+Candidate:\s+(\S+)", line)
        if candidate and current is not None:
            candidates[current] = None if candidate.group(1) == "(none)" else candidate.group(1)
    return candidates


def _apt(program: str, arguments: Sequence[str], apt_options: Sequence[str], timeout: float) -> str:
    if shutil.which(program) is None:
        raise AptError(f"{program} is not installed: the base image audit needs Debian's apt")
    options = [part for option in apt_options for part in ("-o", option)]
    try:
        result = subprocess.run(
            [program, *options, *arguments],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as error:
        raise AptError(
            f"{program} {' '.join(arguments)} took longer than {timeout:.0f} s"
        ) from error
    if result.returncode != 0:
        detail = result.stderr.strip() or result.stdout.strip()
        raise AptError(f"{program} {' '.join(arguments)} failed ({result.returncode}): {detail}")
    return result.stdout


def private_debian_apt(directory: Path, keyring: Path = DEBIAN_KEYRING) -> list[str]:
    """apt options for a Debian 12 apt state of its own in `directory`.

    For machines whose apt is not Debian 12's (GitHub's Ubuntu runners): the lists come
    from Debian's archive, verified with Debian's keyring, and nothing counts as installed.
    Needs no root.
    """
    if not keyring.is_file():
        raise AptError(
            f"no Debian archive keyring at {keyring}: install it (apt-get install "
            "debian-archive-keyring) to verify Debian's package lists"
        )
    etc = directory / "etc"
    for path in (
        etc / "sources.list.d",
        etc / "preferences.d",
        directory / "lists" / "partial",
        directory / "cache" / "archives" / "partial",
    ):
        path.mkdir(parents=True, exist_ok=True)
    (etc / "sources.list").write_text(
        "".join(f"deb [signed-by={keyring}] {url} {suite} main\n" for url, suite in DEBIAN_SOURCES)
    )
    (directory / "status").write_text("")
    return [
        f"Dir::Etc::sourcelist={etc / 'sources.list'}",
        f"Dir::Etc::sourceparts={etc / 'sources.list.d'}",
        f"Dir::Etc::preferencesparts={etc / 'preferences.d'}",
        f"Dir::State::Lists={directory / 'lists'}",
        f"Dir::Cache={directory / 'cache'}",
        f"Dir::State::status={directory / 'status'}",
        "APT::Architecture=amd64",
        "APT::Architectures=amd64",
        "Debug::NoLocking=true",
    ]


def write_apt_config(path: Path, options: Sequence[str]) -> Path:
    """The options as an apt.conf, for tools that read APT_CONFIG (rootfs.py lock, say)."""
    lines = []
    for option in options:
        key, _, value = option.partition("=")
        lines.append(f'{key} "{value}";\n')
    path.write_text("".join(lines))
    return path


def update_lists(apt_options: Sequence[str], timeout: float) -> None:
    try:
        _apt("apt-get", ["update", "-qq"], apt_options, timeout)
    except AptError as error:
        raise AptError(
            f"{error}\nThe audit refreshes apt's lists so that it compares with today's "
            "security updates: run it as root, or run `apt-get update` yourself and pass "
            "--no-apt-update."
        ) from error


def assess_debs(
    packages: Sequence[LockedDeb], apt_options: Sequence[str] = (), timeout: float = 300
) -> list[DebAssessment]:
    sources = _apt("apt-cache", ["policy"], apt_options, timeout)
    missing = missing_suites(sources)
    if missing:
        found = sorted(parse_source_suites(sources)) or ["none"]
        raise AptError(
            f"apt's sources lack {', '.join(missing)} (found: {', '.join(found)}): without "
            "them apt's candidates miss security and point-release fixes. Add them to "
            "/etc/apt/sources.list.d/ (Suites: bookworm bookworm-updates bookworm-security) "
            "and run apt-get update."
        )
    specs = [f"{p.name}:{p.architecture}" for p in packages]
    candidates = parse_candidates(_apt("apt-cache", ["policy", *specs], apt_options, timeout))
    # apt prints the native architecture's packages without the ':arch' suffix.
    return [
        DebAssessment(p, candidates.get(f"{p.name}:{p.architecture}", candidates.get(p.name)))
        for p in packages
    ]
