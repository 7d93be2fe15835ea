"""summary.py run as `make test` runs it: a program over a directory of reports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SUMMARY = Path(__file__).with_name("summary.py")
SUITE = '<testsuite name="{name}" tests="{tests}" failures="{failures}" errors="{errors}" skipped="{skipped}"/>'


def report(
    directory: Path, name: str, tests: int, failures: int = 0, errors: int = 0, skipped: int = 0
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    suite = SUITE.format(name=name, tests=tests, failures=failures, errors=errors, skipped=skipped)
    (directory / f"{name}.xml").write_text(f"<testsuites>{suite}</testsuites>")


def summary(directory: Path) -> tuple[int, str]:
    result = subprocess.run(
        [sys.executable, str(SUMMARY), str(directory)], capture_output=True, text=True, check=False
    )
    return result.returncode, result.stdout.strip() + result.stderr.strip()


def test_totals_add_up_over_nested_reports(tmp_path: Path) -> None:
    report(tmp_path / "a", "one", tests=5, skipped=1)
    report(tmp_path / "b/c", "two", tests=3, failures=1, errors=1)
    assert summary(tmp_path) == (1, "5 passed, 2 failed, 1 skipped in 2 report files")


def test_all_passing_passes(tmp_path: Path) -> None:
    report(tmp_path, "one", tests=2)
    report(tmp_path, "two", tests=1, skipped=1)
    assert summary(tmp_path) == (0, "2 passed, 0 failed, 1 skipped in 2 report files")


def test_an_empty_run_fails(tmp_path: Path) -> None:
    assert summary(tmp_path) == (1, "0 passed, 0 failed, 0 skipped in 0 report files")
    status, message = summary(tmp_path / "absent")
    assert status == 1
    assert "no reports in" in message
