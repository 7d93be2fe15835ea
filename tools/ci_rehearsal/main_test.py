"""Reading act's output into the rehearsal's table, and the stand-in actions act maps."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tools.ci_rehearsal.actions import local_repositories
from tools.ci_rehearsal.contracts import CONTRACTS
from tools.ci_rehearsal.main import Report

ACT_OUTPUT = """\
[ci/lint and type-check] ⭐ Run Set up job
[ci/test               ] ⭐ Run Set up job
[ci/e2e (kind)         ]   | not rehearsed: e2e: kind: no cluster
[ci/test               ]   ❌  Failure - Main Install test prerequisites
[ci/test               ] 🏁  Job failed
[ci/lint and type-check] 🏁  Job succeeded
[ci/e2e (kind)         ] 🏁  Job succeeded
"""


def test_the_report_times_each_job_and_collects_what_was_not_rehearsed() -> None:
    report = Report()
    for second, line in enumerate(ACT_OUTPUT.splitlines()):
        report.read(line, float(second))
    assert report.jobs["ci/lint and type-check"].result == "passed"
    assert report.jobs["ci/lint and type-check"].ended == 5.0
    assert report.jobs["ci/test               "].result == "failed"
    assert report.not_rehearsed == ["ci/e2e (kind)         : not rehearsed: e2e: kind: no cluster"]
    assert not report.passed


def test_stand_ins_are_node_actions_that_hand_over_to_python(tmp_path: Path) -> None:
    pinned = {"actions/cache": "a" * 40, "anchore/sbom-action/download-syft": "b" * 40}
    mappings = local_repositories(pinned, tmp_path, Path.cwd(), sys.executable, None)
    assert mappings == [
        f"actions/cache@{'a' * 40}={tmp_path}/actions/actions/cache",
        f"anchore/sbom-action@{'b' * 40}={tmp_path}/actions/anchore/sbom-action",
    ]
    action = yaml.safe_load((tmp_path / "actions/actions/cache/action.yml").read_text())
    assert action["runs"] == {"using": "node20", "main": "main.js", "post": "post.js"}
    assert set(action["inputs"]) == set(CONTRACTS["actions/cache"].inputs)
    syft = tmp_path / "actions/anchore/sbom-action/download-syft"
    assert (syft / "action.yml").exists()
    # The entry point runs the stand-in: without the rehearsal's settings it says so.
    node = shutil.which("node", path="/usr/local/bin:/usr/bin:/bin")
    if node is None:
        pytest.skip("node runs the stand-ins' entry points; this machine has none")
    ran = subprocess.run([node, str(syft / "main.js")], capture_output=True, text=True, check=False)
    assert ran.returncode == 1
    assert "is not set: run this through `make ci-rehearsal`" in ran.stdout


def test_real_action_checkouts_replace_the_stand_ins(tmp_path: Path) -> None:
    (tmp_path / "real/actions/cache").mkdir(parents=True)
    mappings = local_repositories(
        {"actions/cache": "c" * 40}, tmp_path, Path.cwd(), sys.executable, tmp_path / "real"
    )
    assert mappings == [f"actions/cache@{'c' * 40}={tmp_path}/real/actions/cache"]
    assert not (tmp_path / "actions").exists()
    assert json.dumps(mappings)
