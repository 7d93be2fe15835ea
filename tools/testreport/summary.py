"""Totals of the JUnit XML reports `pants test --test-report` writes, one line:
`N passed, N failed, N skipped in N files`. Exit status 1 when a test failed or none ran,
so an empty run cannot pass.

    python3 tools/testreport/summary.py [REPORT_DIR]   (default: dist/test/reports)
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

DEFAULT_DIR = Path("dist/test/reports")


@dataclass(frozen=True)
class Totals:
    tests: int = 0
    failed: int = 0
    skipped: int = 0
    files: int = 0

    @property
    def passed(self) -> int:
        return self.tests - self.failed - self.skipped

    def __add__(self, other: Totals) -> Totals:
        return Totals(
            self.tests + other.tests,
            self.failed + other.failed,
            self.skipped + other.skipped,
            self.files + other.files,
        )

    def line(self) -> str:
        return (
            f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped"
            f" in {self.files} report files"
        )


def totals_of(report: Path) -> Totals:
    totals = Totals(files=1)
    # The reports are this checkout's own, written by Pants: nothing untrusted.
    root = ElementTree.parse(report).getroot()  # noqa: S314
    for suite in root.iter("testsuite"):
        totals += Totals(
            tests=int(suite.get("tests", 0)),
            failed=int(suite.get("failures", 0)) + int(suite.get("errors", 0)),
            skipped=int(suite.get("skipped", 0)),
        )
    return totals


def summarise(directory: Path) -> Totals:
    totals = Totals()
    for report in sorted(directory.rglob("*.xml")):
        totals += totals_of(report)
    return totals


def main(argv: list[str]) -> int:
    directory = Path(argv[0]) if argv else DEFAULT_DIR
    if not directory.is_dir():
        print(
            f"test summary: no reports in {directory}: run pants test --test-report",
            file=sys.stderr,
        )
        return 1
    totals = summarise(directory)
    print(totals.line())
    return 0 if totals.tests > 0 and totals.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
