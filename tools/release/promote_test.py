"""Promotion checks with real git history and a stand-in `gh` (gh_standin.py) that
answers with recorded GitHub API bodies. It shows which records the promotion reads
and how it decides (a re-run, a record a person made or edited, a run of another
workflow or branch); it cannot show that GitHub's live API answers in that shape, nor
who GitHub lets write deployments in a real repository."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tools.release import gh_standin, promote, record
from tools.release.errors import ReleaseError
from tools.release.github import GitHub
from tools.release.gitrepo import commit, git, init
from tools.release.manifest import Manifest, ServiceImage

REPOSITORY = "acme/meridian"


class Records:
    def __init__(self, root: Path) -> None:
        self.file = root / "github.json"
        self.body: dict[str, Any] = {"api": {}}
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

    def staging(self, sha: str | None, deployments: list[dict[str, Any]]) -> None:
        """The staging deployment records (newest first) listed for sha (None: all)."""
        query = "environment=staging&per_page=100" + (f"&sha={sha}" if sha else "")
        self.body["api"][f"repos/{REPOSITORY}/deployments?{query}&task={record.TASK}"] = deployments

    def deployment(
        self,
        number: int,
        sha: str,
        text: str,
        states: tuple[str, ...] = ("success", "in_progress"),
        run: dict[str, Any] | None = None,
        staging_job: str = "success",
        **changes: Any,
    ) -> dict[str, Any]:
        """A deployment record as the staging job makes it (changes: fields to alter)."""
        body: dict[str, Any] = {
            "id": number,
            "sha": sha,
            "task": record.TASK,
            "creator": {"login": record.BOT},
            "payload": {
                "manifest": text,
                "manifest_sha256": record.sha256_of(text),
                "workflow": record.CI_PATH,
                "run_id": 500 + number,
                "run_attempt": 1,
            },
        }
        body.update(changes)
        self.body["api"][f"repos/{REPOSITORY}/deployments/{number}/statuses?per_page=100"] = [
            {"state": state, "creator": {"login": record.BOT}} for state in states
        ]
        self.body["api"][f"repos/{REPOSITORY}/actions/runs/{500 + number}"] = {
            "path": record.CI_PATH,
            "event": "push",
            "head_branch": "main",
            "head_sha": sha,
            **(run or {}),
        }
        self.body["api"][
            f"repos/{REPOSITORY}/actions/runs/{500 + number}/attempts/1/jobs?per_page=100"
        ] = {"jobs": [{"name": record.STAGING_JOB, "conclusion": staging_job}]}
        return body


def release_of(sha: str, digest: str = "4") -> str:
    image = "ghcr.io/acme/meridian/alpha@sha256:" + digest * 64
    return Manifest(commit=sha, services={"alpha": ServiceImage(image, "0123456789ab")}).to_json()


@pytest.fixture()
def repo(tmp_path: Path) -> tuple[Path, str, Records]:
    root = tmp_path / "repo"
    init(root, {"a.txt": "a"})
    sha = commit(root, {"a.txt": "b"}, "release me")
    git(root, "tag", "v1.4.0")
    records = Records(tmp_path)
    records.ci(sha, "success")
    records.staging(sha, [records.deployment(7, sha, release_of(sha))])
    return root, sha, records


def test_promotes_the_manifest_staging_ran(repo: tuple[Path, str, Records]) -> None:
    root, sha, records = repo
    found = promote.verify(root, records.save(), "1.4.0", sha, "main")
    assert found.text == release_of(sha)
    assert found.sha256 == "sha256:" + hashlib.sha256(release_of(sha).encode()).hexdigest()


def test_a_rerun_promotes_what_its_successful_deploy_ran(repo: tuple[Path, str, Records]) -> None:
    """ "Re-run all jobs" rebuilt the images (other digests) and its staging deploy failed:
    the release is what the first, successful deploy ran, not the newest run's output."""
    root, sha, records = repo
    rerun = release_of(sha, digest="5")
    records.staging(
        sha,
        [
            records.deployment(
                8, sha, rerun, states=("failure", "in_progress"), staging_job="failure"
            ),
            records.deployment(7, sha, release_of(sha)),
        ],
    )
    assert promote.verify(root, records.save(), "1.4.0", sha, "main").text == release_of(sha)


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


def person_posted_success(records: Records, sha: str) -> dict[str, Any]:
    found = records.deployment(7, sha, release_of(sha), states=())
    path = f"repos/{REPOSITORY}/deployments/7/statuses?per_page=100"
    records.body["api"][path] = [{"state": "success", "creator": {"login": "mallory"}}]
    return found


def edited(records: Records, sha: str) -> dict[str, Any]:
    found = records.deployment(7, sha, release_of(sha))
    found["payload"]["manifest"] = release_of(sha, digest="6")
    return found


TAMPERED: dict[str, Callable[[Records, str], dict[str, Any]]] = {
    "deploy failed": lambda r, sha: r.deployment(
        7, sha, release_of(sha), states=("failure", "in_progress")
    ),
    "never finished": lambda r, sha: r.deployment(7, sha, release_of(sha), states=("in_progress",)),
    "made by a person": lambda r, sha: r.deployment(
        7, sha, release_of(sha), creator={"login": "mallory"}
    ),
    "success posted by a person": person_posted_success,
    "manifest edited": edited,
    "manifest of another commit": lambda r, sha: r.deployment(7, sha, release_of("e" * 40)),
    "another workflow": lambda r, sha: r.deployment(
        7, sha, release_of(sha), run={"path": ".github/workflows/mine.yml"}
    ),
    "a branch run": lambda r, sha: r.deployment(
        7, sha, release_of(sha), run={"head_branch": "feature"}
    ),
    "staging job failed": lambda r, sha: r.deployment(
        7, sha, release_of(sha), staging_job="failure"
    ),
    "another task": lambda r, sha: r.deployment(7, sha, release_of(sha), task="deploy"),
}


@pytest.mark.parametrize("how", sorted(TAMPERED))
def test_only_a_record_the_workflow_made_of_a_successful_deploy_promotes(
    repo: tuple[Path, str, Records], how: str
) -> None:
    root, sha, records = repo
    records.staging(sha, [TAMPERED[how](records, sha)])
    with pytest.raises(ReleaseError, match=f"{sha} has no successful staging deployment record"):
        promote.verify(root, records.save(), "1.4.0", sha, "main")


@pytest.mark.parametrize("version", ["v1.4.0", "1.4", "01.4.0", "1.4.0+build"])
def test_version_form(version: str) -> None:
    with pytest.raises(ReleaseError, match="not a release version: X.Y.Z"):
        promote.check_version(version)


def test_what_staging_runs_is_its_newest_successful_record(tmp_path: Path) -> None:
    records = Records(tmp_path)
    commits = {number: str(number) * 40 for number in (1, 2, 3)}
    records.staging(
        None,
        [
            records.deployment(3, commits[3], release_of(commits[3]), states=("failure",)),
            records.deployment(2, commits[2], release_of(commits[2])),
            records.deployment(
                1, commits[1], release_of(commits[1]), states=("inactive", "success")
            ),
        ],
    )
    running = record.running(records.save())
    assert running is not None
    assert running.manifest.commit == commits[2]


def test_the_staging_job_records_the_manifest_it_deploys(tmp_path: Path) -> None:
    records = Records(tmp_path)
    records.body["api"][f"POST repos/{REPOSITORY}/deployments"] = {"id": 41}
    sha = "a" * 40
    text = release_of(sha)
    github = records.save()
    started = record.start(github, "staging", sha, text, run_id=900, run_attempt=2)
    record.finish(github, started, "success")
    calls = [json.loads(line) for line in records.calls.read_text().splitlines()]
    created = calls[0]
    assert created["path"] == f"repos/{REPOSITORY}/deployments"
    assert created["body"]["ref"] == sha
    assert created["body"]["task"] == record.TASK
    assert created["body"]["payload"] == {
        "manifest": text,
        "manifest_sha256": record.sha256_of(text),
        "workflow": record.CI_PATH,
        "run_id": 900,
        "run_attempt": 2,
    }
    assert [call["body"]["state"] for call in calls[1:]] == ["in_progress", "success"]
    assert {call["path"] for call in calls[1:]} == {f"repos/{REPOSITORY}/deployments/41/statuses"}
    with pytest.raises(ReleaseError, match="the manifest is of commit a+, this run of b+"):
        record.start(github, "staging", "b" * 40, text, run_id=900, run_attempt=2)


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
