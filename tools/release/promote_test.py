"""Promotion checks with real git history and a stand-in `gh` (gh_standin.py) that
answers with recorded GitHub API bodies. It shows which records the promotion reads
and how it decides; it cannot show that GitHub's live API answers in that shape."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tools.release import gh_standin, promote
from tools.release.errors import ReleaseError
from tools.release.github import GitHub
from tools.release.gitrepo import commit, git, init
from tools.release.manifest import Manifest, ServiceImage

REPOSITORY = "acme/meridian"


class Records:
    def __init__(self, root: Path) -> None:
        self.file = root / "github.json"
        self.body: dict[str, Any] = {"api": {}, "artifacts": {}}
        self.gh = root / "gh"
        self.calls = root / "gh-calls.jsonl"
        self.gh.write_text(
            "#!/bin/sh\n"
            f"export STANDIN_GH='{self.file}' STANDIN_GH_CALLS='{self.calls}'\n"
            f"export PYTHONPATH='{os.pathsep.join(sys.path)}'\n"
            f"exec '{sys.executable}' '{gh_standin.__file__}' \"$@\"\n"
        )
        self.gh.chmod(0o755)

    def save(self) -> GitHub:
        self.file.write_text(json.dumps(self.body))
        return GitHub(REPOSITORY, str(self.gh))

    def ci(self, sha: str, conclusion: str, app: str = "github-actions") -> None:
        path = f"repos/{REPOSITORY}/commits/{sha}/check-runs?check_name=ci&filter=latest"
        self.body["api"][path] = {
            "check_runs": [{"name": "ci", "conclusion": conclusion, "app": {"slug": app}}]
        }

    def staging(self, sha: str, states: list[str], deployment_id: int = 7) -> None:
        self.body["api"][
            f"repos/{REPOSITORY}/deployments?environment=staging&per_page=100&sha={sha}"
        ] = [{"id": deployment_id, "sha": sha}]
        self.body["api"][
            f"repos/{REPOSITORY}/deployments/{deployment_id}/statuses?per_page=100"
        ] = [{"state": state} for state in states]

    def manifest(self, sha: str, release: Manifest, run_id: int = 99) -> None:
        path = f"repos/{REPOSITORY}/actions/workflows/ci.yml/runs?head_sha={sha}&event=push&per_page=20"
        self.body["api"][path] = {"workflow_runs": [{"id": run_id}]}
        file = self.file.parent / f"manifest-{run_id}.json"
        release.write(file)
        self.body["artifacts"][str(run_id)] = str(file)


def release_of(sha: str) -> Manifest:
    image = "ghcr.io/acme/meridian/alpha@sha256:" + "4" * 64
    return Manifest(commit=sha, services={"alpha": ServiceImage(image, "0123456789ab")})


@pytest.fixture()
def repo(tmp_path: Path) -> tuple[Path, str, Records]:
    root = tmp_path / "repo"
    init(root, {"a.txt": "a"})
    sha = commit(root, {"a.txt": "b"}, "release me")
    git(root, "tag", "v1.4.0")
    records = Records(tmp_path)
    records.ci(sha, "success")
    records.staging(sha, ["inactive", "success", "in_progress"])
    records.manifest(sha, release_of(sha))
    return root, sha, records


def test_promotes_the_manifest_staging_ran(repo: tuple[Path, str, Records]) -> None:
    root, sha, records = repo
    assert promote.verify(root, records.save(), "1.4.0", sha, "main") == release_of(sha)


def test_tag_must_point_at_the_commit(repo: tuple[Path, str, Records]) -> None:
    root, sha, records = repo
    other = commit(root, {"a.txt": "c"}, "later")
    with pytest.raises(
        ReleaseError, match=f"tag v1.4.0 points at {sha}, not at the release commit {other}"
    ):
        promote.verify(root, records.save(), "1.4.0", other, "main")
    with pytest.raises(ReleaseError, match="tag v9.9.9 does not exist"):
        promote.verify(root, records.save(), "9.9.9", sha, "main")


def test_commit_must_be_on_main(repo: tuple[Path, str, Records]) -> None:
    root, _, records = repo
    git(root, "checkout", "-q", "-b", "side", "HEAD~1")
    side = commit(root, {"b.txt": "side"}, "not on main")
    git(root, "tag", "v1.5.0")
    with pytest.raises(ReleaseError, match=f"{side} is not on main"):
        promote.verify(root, records.save(), "1.5.0", side, "main")


@pytest.mark.parametrize(
    ("conclusion", "app"), [("failure", "github-actions"), ("success", "other-ci")]
)
def test_ci_must_have_passed(repo: tuple[Path, str, Records], conclusion: str, app: str) -> None:
    root, sha, records = repo
    records.ci(sha, conclusion, app)
    with pytest.raises(ReleaseError, match="`ci` summary check .* did not pass"):
        promote.verify(root, records.save(), "1.4.0", sha, "main")


@pytest.mark.parametrize("states", [[], ["failure", "in_progress"], ["error"]])
def test_staging_must_have_succeeded(repo: tuple[Path, str, Records], states: list[str]) -> None:
    root, sha, records = repo
    records.staging(sha, states)
    with pytest.raises(ReleaseError, match="no successful staging deployment"):
        promote.verify(root, records.save(), "1.4.0", sha, "main")


def test_manifest_must_be_of_the_commit(repo: tuple[Path, str, Records]) -> None:
    root, sha, records = repo
    records.manifest(sha, release_of("e" * 40))
    with pytest.raises(ReleaseError, match=f"recorded a manifest of commit {'e' * 40}"):
        promote.verify(root, records.save(), "1.4.0", sha, "main")


@pytest.mark.parametrize("version", ["v1.4.0", "1.4", "01.4.0", "1.4.0+build"])
def test_version_form(version: str) -> None:
    with pytest.raises(ReleaseError, match="not a release version: X.Y.Z"):
        promote.check_version(version)


def test_last_successful_staging_deployment(tmp_path: Path) -> None:
    records = Records(tmp_path)
    records.body["api"][f"repos/{REPOSITORY}/deployments?environment=staging&per_page=100"] = [
        {"id": 3, "sha": "3" * 40},
        {"id": 2, "sha": "2" * 40},
        {"id": 1, "sha": "1" * 40},
    ]
    for deployment_id, states in {
        3: ["failure"],
        2: ["success", "in_progress"],
        1: ["inactive", "success"],
    }.items():
        records.body["api"][
            f"repos/{REPOSITORY}/deployments/{deployment_id}/statuses?per_page=100"
        ] = [{"state": state} for state in states]
    assert records.save().last_successful_deployment("staging") == "2" * 40


def wait_records(tmp_path: Path, artifacts: list[str], job: dict[str, str]) -> GitHub:
    records = Records(tmp_path)
    records.body["api"][f"repos/{REPOSITORY}/actions/runs/5/artifacts?per_page=100"] = {
        "artifacts": [{"name": name} for name in artifacts]
    }
    records.body["api"][f"repos/{REPOSITORY}/actions/runs/5/attempts/1/jobs?per_page=100"] = {
        "jobs": [{"name": "build, scan, SBOM", **job}]
    }
    return records.save()


def test_wait_for_artifact(tmp_path: Path) -> None:
    running = {"status": "in_progress"}
    assert wait_records(tmp_path, ["sbom", "images"], running).wait_for_artifact(
        5, 1, "images", "build, scan, SBOM", 10
    )
    succeeded = {"status": "completed", "conclusion": "success"}
    github = wait_records(tmp_path, [], succeeded)
    assert not github.wait_for_artifact(5, 1, "images", "build, scan, SBOM", 10)
    failed = {"status": "completed", "conclusion": "failure"}
    with pytest.raises(ReleaseError, match="ended failure without making images"):
        wait_records(tmp_path, [], failed).wait_for_artifact(
            5, 1, "images", "build, scan, SBOM", 10
        )
    with pytest.raises(ReleaseError, match="no images artifact .* within 1 s"):
        wait_records(tmp_path, [], running).wait_for_artifact(
            5, 1, "images", "build, scan, SBOM", 1, poll=0.5
        )
