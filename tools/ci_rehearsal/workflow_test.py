"""The rehearsal's copies of the repository's own workflows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tools.ci_rehearsal.actions import pinned_actions
from tools.ci_rehearsal.contracts import CONTRACTS, NOT_REHEARSED, Skip
from tools.ci_rehearsal.workflow import WorkflowError, rehearsal_copy

WORKFLOWS = Path(".github/workflows")


def _copy(name: str, event: str, jobs: tuple[str, ...] = ()) -> dict[str, Any]:
    copy: dict[str, Any] = yaml.safe_load(
        rehearsal_copy((WORKFLOWS / name).read_text(), name, event, jobs)
    )
    return copy


@pytest.mark.parametrize("event", ["pull_request", "push"])
def test_every_skip_names_a_job_or_step_that_exists(event: str) -> None:
    for name in {skip.workflow for skip in NOT_REHEARSED}:
        copy = _copy(name, event)
        assert "on" in copy


def test_a_skipped_step_keeps_its_id_and_condition_and_says_why() -> None:
    build = _copy("ci.yml", "push")["jobs"]["build"]
    base = next(step for step in build["steps"] if step.get("name") == "Base commit")
    assert base["id"] == "base"
    assert base["run"].startswith("printf '%s\\n' 'not rehearsed: build: Base commit: ")
    # On a pull request the step runs: it only asks git.
    pr_build = _copy("ci.yml", "pull_request")["jobs"]["build"]
    pr_base = next(step for step in pr_build["steps"] if step.get("name") == "Base commit")
    assert "merge-base" in pr_base["run"]


def test_a_skipped_job_keeps_its_needs_and_condition() -> None:
    jobs = _copy("ci.yml", "push")["jobs"]
    assert jobs["staging"]["needs"] == ["ci", "publish"]
    assert "if" in jobs["publish"]
    assert len(jobs["e2e"]["steps"]) == 1
    assert "not rehearsed: e2e:" in jobs["e2e"]["steps"][0]["run"]


def test_choosing_jobs_keeps_what_they_need() -> None:
    jobs = _copy("ci.yml", "pull_request", ("lint", "test"))["jobs"]
    assert set(jobs) == {"lint", "test"}
    # publish pushes only after lint, the tests and e2e passed.
    assert set(_copy("ci.yml", "push", ("publish",))["jobs"]) == {
        "publish",
        "build",
        "lint",
        "test",
        "e2e",
    }
    with pytest.raises(WorkflowError, match="no job 'nope'"):
        _copy("ci.yml", "push", ("nope",))


def test_a_skip_for_a_step_that_is_gone_fails_loudly() -> None:
    gone = (Skip("ci.yml", "lint", "reason", step="no such step"),)
    with pytest.raises(WorkflowError, match="no step named 'no such step'"):
        rehearsal_copy((WORKFLOWS / "ci.yml").read_text(), "ci.yml", "push", (), gone)


def test_every_pinned_action_has_a_contract() -> None:
    pinned = pinned_actions(sorted(Path(".github").rglob("*.yml")))
    assert pinned, "the workflows pin their actions"
    assert set(pinned) <= set(CONTRACTS), set(pinned) - set(CONTRACTS)
