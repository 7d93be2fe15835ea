"""A Debian 12 apt to test against: this machine's, or one of the audit's own making."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tools.audit.apt import DEBIAN_KEYRING, missing_suites, private_debian_apt, update_lists


@dataclass(frozen=True)
class DebianApt:
    options: list[str]  # apt `-o` options; empty for this machine's own apt
    lists: Path  # the downloaded package lists it reads


@pytest.fixture(scope="session")
def debian_apt(tmp_path_factory: pytest.TempPathFactory) -> DebianApt:
    apt_cache = shutil.which("apt-cache")
    if apt_cache is None:
        pytest.skip("needs apt")
    policy = subprocess.run([apt_cache, "policy"], capture_output=True, text=True, check=True)
    if not missing_suites(policy.stdout):
        return DebianApt([], Path("/var/lib/apt/lists"))
    # GitHub's Ubuntu runners, say: Debian's own lists, verified with Debian's keyring.
    if not DEBIAN_KEYRING.is_file():
        pytest.skip("this apt is not Debian 12's and debian-archive-keyring is not installed")
    directory = tmp_path_factory.mktemp("debian-apt")
    options = private_debian_apt(directory)
    update_lists(options, timeout=300)
    return DebianApt(options, directory / "lists")
