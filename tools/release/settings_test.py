"""Repository settings as code against a stand-in `gh` (gh_standin.py) with recorded
GitHub answers: it shows which API calls the files turn into, and that nothing is
written when a check fails; not that GitHub accepts them (no GitHub here)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tools.release import settings
from tools.release.errors import ReleaseError
from tools.release.promote_test import REPOSITORY, Records

REPO = Path.cwd()


def writes(records: Records) -> list[dict[str, Any]]:
    if not records.calls.exists():
        return []
    return [json.loads(line) for line in records.calls.read_text().splitlines()]


def production_with(records: Records, reviewers: list[dict[str, Any]]) -> None:
    records.body["api"][f"repos/{REPOSITORY}/environments/production"] = {
        "protection_rules": [{"type": "required_reviewers", "reviewers": reviewers}]
    }


@pytest.fixture()
def records(tmp_path: Path) -> Records:
    records = Records(tmp_path)
    records.body["api"][f"repos/{REPOSITORY}/rulesets?per_page=100"] = [{"name": "main", "id": 11}]
    production_with(records, [{"type": "Team", "reviewer": {"id": 42, "slug": "release"}}])
    for name in ("staging", "ci-cache-write"):
        records.body["api"][f"repos/{REPOSITORY}/environments/{name}"] = {"protection_rules": []}
    records.body["api"][
        f"repos/{REPOSITORY}/environments/production/deployment-branch-policies?per_page=100"
    ] = {"branch_policies": [{"id": 5, "name": "main", "type": "branch"}]}
    for name in ("staging", "ci-cache-write"):
        records.body["api"][
            f"repos/{REPOSITORY}/environments/{name}/deployment-branch-policies?per_page=100"
        ] = {"branch_policies": [{"id": 6, "name": "main", "type": "branch"}]}
    return records


def test_the_repository_settings_apply(records: Records) -> None:
    github = records.save()
    settings.apply(github, REPO / ".github/rulesets", REPO / ".github/environments")
    calls = {(call["method"], call["path"]): call["body"] for call in writes(records)}
    rulesets = f"repos/{REPOSITORY}/rulesets"
    assert calls[("PUT", f"{rulesets}/11")]["name"] == "main"
    assert calls[("POST", rulesets)]["name"] == "release tags"
    production = f"repos/{REPOSITORY}/environments/production"
    assert calls[("PUT", production)] == {
        "prevent_self_review": True,
        "deployment_branch_policy": {"protected_branches": False, "custom_branch_policies": True},
        "reviewers": [{"type": "Team", "id": 42}],
    }
    # Production deploys from v* tags only: the branch rule that let main deploy goes.
    assert ("DELETE", f"{production}/deployment-branch-policies/5") in calls
    assert calls[("POST", f"{production}/deployment-branch-policies")] == {
        "name": "v*",
        "type": "tag",
    }
    # staging and ci-cache-write already allow main alone: nothing to add or remove.
    for name in ("staging", "ci-cache-write"):
        assert not [
            key for key in calls if key[1].startswith(f"repos/{REPOSITORY}/environments/{name}/")
        ]


def test_production_without_reviewers_changes_nothing(records: Records) -> None:
    production_with(records, [])
    with pytest.raises(
        ReleaseError, match=r"environments \['production'\] need required reviewers"
    ):
        settings.apply(records.save(), REPO / ".github/rulesets", REPO / ".github/environments")
    assert writes(records) == []


def test_malformed_environment_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "environments"
    shutil.copytree(REPO / ".github/environments", directory)
    (directory / "staging.json").write_text(
        json.dumps({"name": "staging", "deployment_policies": [{"name": "main", "type": "ref"}]})
    )
    with pytest.raises(ReleaseError, match="needs a name and a type in"):
        settings.read_environments(directory)
    (directory / "staging.json").write_text(
        json.dumps({"name": "stage", "deployment_policies": []})
    )
    with pytest.raises(ReleaseError, match="must be the file's name"):
        settings.read_environments(directory)
