"""Checks (and on Debian/Ubuntu as root, installs) what Meridian's build and local stack
need from the host: CPython 3.9 for Pants, CPython 3.11 for the services, PostgreSQL
server binaries, Redis, git, a local registry for the image checks, and kubectl for the
manifest checks. Everything else comes from lockfiles; the container engine comes from
tools/images/engine.sh.

    tools/prerequisites.sh [--check]      (--check only reports; exit 1 if something is missing)

Each prerequisite is reported on its own line, found or missing. The Pythons are looked
for where `./pants` looks (tools/bootstrap/interpreters.py), the GitHub Actions tool
cache included. Standard library only, Python 3.9+: it runs before Pants exists.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tools.bootstrap.interpreters import PANTS, SERVICES, PythonNotFoundError, Wanted, find


@dataclass(frozen=True)
class Command:
    """A program Meridian runs from PATH and the package that provides it."""

    name: str
    debian: str
    description: str
    brew: str = ""


COMMANDS = (
    Command("git", "git", "version control"),
    Command("make", "make", "task runner"),
    Command(
        "initdb",
        "postgresql",
        "PostgreSQL server, stands in for CockroachDB locally",
        "postgresql@15",
    ),
    Command("postgres", "postgresql", "PostgreSQL server", "postgresql@15"),
    Command("psql", "postgresql-client", "PostgreSQL client", "libpq"),
    Command("redis-server", "redis-server", "Redis server", "redis"),
    Command("openssl", "openssl", "certificates for the TLS tests"),
    Command(
        "docker-registry", "docker-registry", "local registry, for the image checks", "distribution"
    ),
    # act runs the CI rehearsal's stand-in actions with node (make ci-rehearsal).
    Command("node", "nodejs", "runs the CI rehearsal's stand-in actions", "node"),
)
PYTHONS = (SERVICES, PANTS)
# Debian keeps PostgreSQL's server binaries off PATH; these are linked into it.
POSTGRES_TOOLS = ("initdb", "postgres", "pg_ctl")
POSTGRES_LINK_DIR = Path("/usr/local/bin")


@dataclass
class Survey:
    """What was found where, and what is missing with how to get it."""

    found: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    packages: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def ok(self, name: str, where: str) -> None:
        self.found.append(f"  ok       {name:<16} {where}")

    def lines(self) -> list[str]:
        return self.found + self.notes + self.missing


def python_hint(wanted: Wanted) -> str:
    if wanted is PANTS:
        return f"pyenv install {wanted.version} / brew install python@{wanted.version} / set {wanted.variable}"
    return f"pyenv install {wanted.version} / apt-get install {wanted.executable} / set {wanted.variable}"


def survey(env: Mapping[str, str]) -> Survey:
    result = Survey()
    path = env.get("PATH", "")
    for command in COMMANDS:
        where = shutil.which(command.name, path=path)
        if where:
            result.ok(command.name, where)
            continue
        if command.debian not in result.packages:
            result.packages.append(command.debian)
        result.missing.append(
            f"  missing  {command.name} ({command.description}): "
            f"apt-get install {command.debian} / brew install {command.brew or command.debian}"
        )
    for wanted in PYTHONS:
        try:
            result.ok(wanted.executable, find(wanted, env))
        except PythonNotFoundError:
            result.missing.append(
                f"  missing  {wanted.executable} ({wanted.purpose}): {python_hint(wanted)}"
            )
    # Not in Debian's archive: installed pinned by tools/install-dev-tools.sh.
    kubectl = shutil.which("kubectl", path=path)
    if kubectl:
        result.ok("kubectl", kubectl)
    else:
        result.notes.append(
            "  missing  kubectl (optional: the manifest checks and Tilt need it): "
            "tools/install-dev-tools.sh"
        )
    return result


def privilege_prefix(env: Mapping[str, str]) -> list[str] | None:
    """[] as root, ["sudo"] with password-less sudo, None when apt cannot be used."""
    if shutil.which("apt-get", path=env.get("PATH", "")) is None:
        return None
    if os.geteuid() == 0:
        return []
    sudo = shutil.which("sudo", path=env.get("PATH", ""))
    if (
        sudo
        and subprocess.run([sudo, "-n", "true"], capture_output=True, check=False).returncode == 0
    ):
        return [sudo]
    return None


def newest_postgres_bin(root: Path = Path("/usr/lib/postgresql")) -> Path | None:
    versions = [path for path in root.glob("*/bin") if path.parent.name.isdigit()]
    return max(versions, key=lambda path: int(path.parent.name), default=None)


def install(packages: Sequence[str], prefix: Sequence[str], env: Mapping[str, str]) -> None:
    print(f"Installing missing packages: {' '.join(packages)}", file=sys.stderr)
    apt_env = {**env, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*prefix, "apt-get", "update", "-qq"], env=apt_env, check=True)
    subprocess.run(
        [*prefix, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
        env=apt_env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    bin_dir = newest_postgres_bin()
    if shutil.which("initdb", path=env.get("PATH", "")) is None and bin_dir is not None:
        for tool in POSTGRES_TOOLS:
            link = POSTGRES_LINK_DIR / tool
            subprocess.run([*prefix, "ln", "-sf", str(bin_dir / tool), str(link)], check=True)
    # Redis is started by Meridian's tooling on its own ports, not as a system service.
    systemctl = shutil.which("systemctl", path=env.get("PATH", ""))
    if systemctl:
        active = subprocess.run(
            [systemctl, "is-active", "--quiet", "redis-server"], capture_output=True, check=False
        )
        if active.returncode == 0:
            subprocess.run(
                [*prefix, systemctl, "disable", "--now", "redis-server"],
                capture_output=True,
                check=False,
            )


def report(result: Survey) -> None:
    print("\n".join(result.lines()), file=sys.stderr)


def main(argv: Sequence[str], env: Mapping[str, str]) -> int:
    parser = argparse.ArgumentParser(prog="tools/prerequisites.sh", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only report; install nothing")
    args = parser.parse_args(argv)

    result = survey(env)
    if not result.missing:
        if args.check:
            report(result)
        return 0
    prefix = None if args.check or not result.packages else privilege_prefix(env)
    if prefix is not None:
        try:
            install(result.packages, prefix, env)
        except subprocess.CalledProcessError as error:
            print(f"tools/prerequisites.sh: {error}", file=sys.stderr)
            return 1
        result = survey(env)
        report(result)
        return 1 if result.missing else 0
    print("Meridian needs what is missing here:", file=sys.stderr)
    report(result)
    return 1
