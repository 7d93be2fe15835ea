"""The whole audit against a real HTTP index (serving PyPI's JSON shape) and this machine's apt."""

from __future__ import annotations

import datetime
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.audit.apt import parse_candidates
from tools.audit.conftest import DebianApt, serving_index
from tools.audit.main import main

NOW = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)
PROJECTS = {
    # name -> (version, upload time) of each release
    "fresh": [("1.0", "2025-01-01T00:00:00Z"), ("1.1", "2026-11-25T00:00:00Z")],
    "current": [("2.0", "2025-06-01T00:00:00Z")],
    "stale": [("0.1", "2024-01-01T00:00:00Z"), ("0.2", "2024-02-01T00:00:00Z")],
}


@pytest.fixture()
def index_url() -> Iterator[str]:
    pages = {
        f"/pypi/{name}/json": json.dumps(
            {"releases": {v: [{"upload_time_iso_8601": t, "yanked": False}] for v, t in releases}}
        ).encode()
        for name, releases in PROJECTS.items()
    }
    with serving_index(pages) as url:
        yield url


def write_lock(path: Path, pins: dict[str, str]) -> Path:
    entries = [{"project_name": name, "version": version} for name, version in pins.items()]
    path.write_text(
        "// Pants lockfile\n" + json.dumps({"locked_resolves": [{"locked_requirements": entries}]})
    )
    return path


def write_packages_lock(path: Path, apt_options: list[str]) -> Path:
    apt_cache = shutil.which("apt-cache")
    assert apt_cache is not None
    options = [part for option in apt_options for part in ("-o", option)]
    policy = subprocess.run(
        [apt_cache, *options, "policy", "libc6:amd64"], capture_output=True, text=True, check=True
    )
    candidate = parse_candidates(policy.stdout)["libc6"]
    path.write_text(f"package\tversion\tarchitecture\nlibc6\t{candidate}\tamd64\n")
    return path


EXCEPTIONS = """
[[python]]
name = "stale"
version = "0.1"
reason = "waiting for the upstream fix"
review_by = {date}
"""


@pytest.fixture()
def apt_args(debian_apt: DebianApt) -> list[str]:
    return [part for option in debian_apt.options for part in ("--apt-option", option)]


@pytest.fixture()
def files(tmp_path: Path, debian_apt: DebianApt) -> dict[str, Path]:
    return {
        "lock": write_lock(
            tmp_path / "default.lock", {"fresh": "1.0", "current": "2.0", "stale": "0.1"}
        ),
        "packages": write_packages_lock(tmp_path / "packages.lock", debian_apt.options),
        "exceptions": tmp_path / "exceptions.toml",
    }


def run(files: dict[str, Path], index_url: str, apt_args: list[str], *extra: str) -> int:
    return main(
        [
            "--lockfile", str(files["lock"]),
            "--packages-lock", str(files["packages"]),
            "--exceptions", str(files["exceptions"]),
            "--index-url", index_url,
            "--no-apt-update",
            *apt_args,
            *extra,
        ],
        now=NOW,
    )  # fmt: skip


def test_passes_with_grace_and_exception(
    files: dict[str, Path], index_url: str, apt_args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    files["exceptions"].write_text(EXCEPTIONS.format(date="2027-01-01"))
    assert run(files, index_url, apt_args) == 0
    out = capsys.readouterr().out
    assert "3 checked: 1 at newest, 1 within the 30-day grace, 1 by exception, 0 failing" in out
    assert "1 checked: 1 at apt's newest candidate" in out
    assert "Audit passed" in out


def test_fails_when_behind_or_exception_expired(
    files: dict[str, Path], index_url: str, apt_args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    files["exceptions"].write_text("")
    assert run(files, index_url, apt_args) == 1
    assert "behind: stale 0.1 -> 0.2" in capsys.readouterr().err

    files["exceptions"].write_text(EXCEPTIONS.format(date="2026-12-01"))
    assert run(files, index_url, apt_args) == 1
    assert "was due for review on 2026-12-01" in capsys.readouterr().err

    files["exceptions"].write_text(EXCEPTIONS.format(date="2027-01-01"))
    assert run(files, index_url, apt_args, "--grace-days", "0") == 1
    assert "behind: fresh 1.0 -> 1.1" in capsys.readouterr().err


def test_unused_exception_fails(
    files: dict[str, Path], index_url: str, apt_args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    files["exceptions"].write_text(
        EXCEPTIONS.format(date="2027-01-01")
        .replace('"stale"', '"current"')
        .replace('"0.1"', '"2.0"')
    )
    assert run(files, index_url, apt_args) == 1
    assert "unused exception: current 2.0" in capsys.readouterr().err


def test_unknown_project_fails_closed(
    files: dict[str, Path], index_url: str, apt_args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    write_lock(files["lock"], {"current": "2.0", "absent": "1.0"})
    files["exceptions"].write_text("")
    assert run(files, index_url, apt_args) == 1
    captured = capsys.readouterr()
    assert "nothing was cleared: the index answered 404" in captured.err
    assert "Audit passed" not in captured.out


def test_exports_requirements_and_ignored_advisories(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--lockfile", str(files["lock"]), "--exceptions", str(files["exceptions"])]
    assert main(["export-requirements", *args], now=NOW) == 0
    assert capsys.readouterr().out.splitlines() == ["current==2.0", "fresh==1.0", "stale==0.1"]

    files["exceptions"].write_text(
        '[[advisory]]\nid = "CVE-1"\naliases = ["GHSA-1"]\npackage = "p"\nreason = "r"\n'
        "review_by = 2027-01-01\n"
    )
    assert main(["ignored-advisories", *args], now=NOW) == 0
    assert capsys.readouterr().out.splitlines() == ["CVE-1", "GHSA-1"]
    assert main(["ignored-advisories", *args], now=NOW + datetime.timedelta(days=31)) == 1
    assert "was due for review on 2027-01-01" in capsys.readouterr().err
