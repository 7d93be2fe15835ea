"""Where each base image package stands against apt's newest candidate.

apt resolves candidates across every suite in its sources; a candidate is only the
newest safe version when the security and point-release suites are among them.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
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
    suites: tuple[str, ...] = ()  # the suites apt has the candidate from

    @property
    def at_newest(self) -> bool:
        return self.candidate == self.package.version

    @property
    def from_security(self) -> bool:
        return any(suite.endswith("-security") for suite in self.suites)

    def describe(self) -> str:
        p = self.package
        if self.candidate is None:
            return f"{p.name} {p.version}: apt has no candidate for {p.name}:{p.architecture}"
        if self.at_newest:
            return f"{p.name} {p.version} is apt's candidate"
        where = f" in {', '.join(self.suites)}" if self.suites else ""
        return f"{p.name} {p.version} -> {self.candidate}{where}"


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


def parse_package_files(policy: str) -> dict[str, str]:
    """Package file (`URL DIST/COMPONENT ARCH Packages`) -> its suite's codename, from the
    `Package files:` part of `apt-cache policy`."""
    files: dict[str, str] = {}
    current = None
    for line in policy.splitlines():
        release = re.match(r"^\s+release\b.*\bn=([^,\s]+)", line)
        if release and current is not None:
            files[current] = release.group(1)
            continue
        source = re.match(r"^\s*-?\d+\s+(\S.*?)\s*$", line)
        if source:
            current = source.group(1)
    return files


@dataclass(frozen=True)
class Policy:
    candidate: str | None
    sources: dict[str, list[str]]  # version -> package files apt has it from


def parse_policies(policy: str) -> dict[str, Policy]:
    """Package -> candidate and version table, from `apt-cache policy NAME...`."""
    policies: dict[str, Policy] = {}
    current = None
    version = None
    for line in policy.splitlines():
        header = re.match(r"^(\S+):$", line)
        if header:
            current = header.group(1)
            policies[current] = Policy(None, {})
            version = None
            continue
        if current is None:
            continue
        candidate = re.match(r"^\s+Candidate:\s+(\S+)", line)
        if candidate:
            value = None if candidate.group(1) == "(none)" else candidate.group(1)
            policies[current] = Policy(value, policies[current].sources)
            continue
        entry = re.match(r"^ (?:\*\*\*| {3}) (\S+) -?\d+$", line)
        if entry:
            version = entry.group(1)
            policies[current].sources[version] = []
            continue
        source = re.match(r"^\s{6,}-?\d+\s+(\S.*?)\s*$", line)
        if source and version is not None:
            policies[current].sources[version].append(source.group(1))
    return policies


def parse_candidates(policy: str) -> dict[str, str | None]:
    """Package -> candidate version from `apt-cache policy NAME...`; None for '(none)'."""
    return {name: p.candidate for name, p in parse_policies(policy).items()}


def _apt(
    program: str,
    arguments: Sequence[str],
    apt_options: Sequence[str],
    timeout: float,
    cwd: str | None = None,
) -> str:
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
            cwd=cwd,
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
    sources = [f"deb [signed-by={keyring}] {url} {suite} main" for url, suite in DEBIAN_SOURCES]
    return private_apt(directory, sources)


def private_apt(directory: Path, sources: Sequence[str]) -> list[str]:
    """apt options for an apt state of its own in `directory`, reading only `sources`
    (sources.list lines); nothing counts as installed."""
    etc = directory / "etc"
    for path in (
        etc / "sources.list.d",
        etc / "preferences.d",
        directory / "lists" / "partial",
        directory / "cache" / "archives" / "partial",
    ):
        path.mkdir(parents=True, exist_ok=True)
    (etc / "sources.list").write_text("".join(f"{line}\n" for line in sources))
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
        # Without --error-on=any, apt-get exits 0 when it could not fetch a list and
        # keeps the stale one: the audit would compare with old data and not know it.
        _apt("apt-get", ["update", "-qq", "--error-on=any"], apt_options, timeout)
    except AptError as error:
        raise AptError(
            f"{error}\nThe audit refreshes apt's lists so that it compares with today's "
            "security updates, and fails when any list could not be fetched: check the "
            "network and apt's sources, run it as root, or pass --debian-apt DIR for a "
            "private apt state."
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
    suites_of = parse_package_files(sources)
    specs = [f"{p.name}:{p.architecture}" for p in packages]
    policies = parse_policies(_apt("apt-cache", ["policy", *specs], apt_options, timeout))
    results = []
    for p in packages:
        # apt prints the native architecture's packages without the ':arch' suffix.
        policy = policies.get(f"{p.name}:{p.architecture}") or policies.get(p.name)
        if policy is None or policy.candidate is None:
            results.append(DebAssessment(p, None))
            continue
        files = policy.sources.get(policy.candidate, [])
        suites = tuple(sorted({suites_of[f] for f in files if f in suites_of}))
        results.append(DebAssessment(p, policy.candidate, suites))
    return results


def version_lower(left: str, right: str) -> bool:
    """Debian's ordering (dpkg --compare-versions): whether `left` sorts before `right`."""
    dpkg = shutil.which("dpkg")
    if dpkg is None:
        raise AptError("dpkg is not installed: the base image audit needs Debian's dpkg")
    result = subprocess.run(
        [dpkg, "--compare-versions", left, "lt", right], capture_output=True, check=False
    )
    if result.returncode not in (0, 1):
        raise AptError(f"dpkg cannot compare the versions {left!r} and {right!r}")
    return result.returncode == 0


def changelog(
    package: LockedDeb, version: str, apt_options: Sequence[str], timeout: float = 300
) -> str | None:
    """The changelog.Debian of `package` at `version`, downloaded with apt; None when the
    package ships none of its own (its doc folder links to another package's)."""
    with tempfile.TemporaryDirectory(prefix="audit-deb-") as scratch:
        # The download goes to the working directory; as root, apt would otherwise hand it
        # to its sandbox user, who cannot write a private temporary folder.
        options = [*apt_options, "APT::Sandbox::User=root"] if os.geteuid() == 0 else apt_options
        spec = f"{package.name}:{package.architecture}={version}"
        _apt("apt-get", ["download", "-qq", spec], options, timeout, cwd=scratch)
        debs = list(Path(scratch).glob("*.deb"))
        if len(debs) != 1:
            raise AptError(f"apt-get download {spec} left {len(debs)} .deb files, expected 1")
        dpkg_deb = shutil.which("dpkg-deb")
        if dpkg_deb is None:
            raise AptError("dpkg-deb is not installed: the base image audit needs Debian's dpkg")
        tar = subprocess.run(
            [dpkg_deb, "--fsys-tarfile", str(debs[0])], capture_output=True, check=False
        )
        if tar.returncode != 0:
            raise AptError(f"dpkg-deb cannot read {debs[0].name}: {tar.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(tar.stdout)) as archive:
        members = [
            m
            for m in archive.getmembers()
            if m.isfile()
            and re.fullmatch(r"(\./)?usr/share/doc/[^/]+/changelog\.Debian\.gz", m.name)
        ]
        own = [m for m in members if f"/doc/{package.name}/" in m.name]
        chosen = (own or members)[:1]
        if not chosen:
            return None
        data = archive.extractfile(chosen[0])
        if data is None:
            raise AptError(f"{chosen[0].name} in {package.name} {version} cannot be read")
        return gzip.decompress(data.read()).decode("utf-8", errors="replace")
