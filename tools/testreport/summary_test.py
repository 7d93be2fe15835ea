from __future__ import annotations

from pathlib import Path

from tools.testreport.summary import main, summarise

SUITE = '<testsuite name="{name}" tests="{tests}" failures="{failures}" errors="{errors}" skipped="{skipped}"/>'


def report(directory: Path, name: str, tests: int, failures: int = 0, errors: int = 0, skipped: int = 0) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    suite = SUITE.format(name=name, tests=tests, failures=failures, errors=errors, skipped=skipped)
    (directory / f"{name}.xml").write_text(f"<testsuites>{suite}</testsuites>")


def test_totals_add_up_over_nested_reports(tmp_path: Path) -> None:
    report(tmp_path / "a", "one", tests=5, skipped=1)
    report(tmp_path / "b/c", "two", tests=3, failures=1, errors=1)
    totals = summarise(tmp_path)
    assert (totals.passed, totals.failed, totals.skipped, totals.files) == (5, 2, 1, 2)
    assert totals.line() == "5 passed, 2 failed, 1 skipped in 2 report files"


def test_a_failure_fails(tmp_path: Path) -> None:
    report(tmp_path, "one", tests=2, failures=1)
    assert main([str(tmp_path)]) == 1


def test_an_empty_run_fails(tmp_path: Path) -> None:
    assert main([str(tmp_path)]) == 1
    assert main([str(tmp_path / "absent")]) == 1


def test_all_passing_passes(tmp_path: Path) -> None:
    report(tmp_path, "one", tests=2)
    assert main([str(tmp_path)]) == 0
