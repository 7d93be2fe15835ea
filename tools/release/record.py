"""The record of what staging ran: a GitHub deployment carrying the exact manifest.

The staging job creates a deployment of environment `staging`, task TASK, whose payload
holds the manifest it deploys, byte for byte, with its sha256 and the run that made it:

    {"manifest": "<the manifest file's text>", "manifest_sha256": "sha256:<64 hex>",
     "workflow": ".github/workflows/ci.yml", "run_id": 123, "run_attempt": 1}

then marks it `in_progress`, and `success` or `failure` when the deploy ended. A record
counts only when all of these hold, so neither a person with `deployments: write` nor
another workflow can make one that promotes:
- GitHub Actions created it and wrote its `success` status (creator github-actions[bot]);
- the payload's manifest hashes to its recorded sha256, parses, and is of the
  deployment's commit;
- its run is a push run of ci.yml on main for that commit, and that run attempt's
  staging job succeeded.
A release promotes the manifest of such a record (fetched from the record, never from
"the newest run's artifact"), and main's next build carries forward the manifest of
the newest one (what staging runs: deploys only move forward, failures roll back).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tools.release import manifest as manifests
from tools.release.errors import ReleaseError
from tools.release.github import GitHub

TASK = "deploy:manifest"
BOT = "github-actions[bot]"
CI_PATH = ".github/workflows/ci.yml"
STAGING_JOB = "deploy to staging"
MAIN = "main"


def sha256_of(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Record:
    deployment_id: int
    text: str  # the manifest exactly as deployed
    sha256: str
    run_id: int

    @property
    def manifest(self) -> manifests.Manifest:
        return manifests.parse(self.text, f"staging deployment {self.deployment_id}")


def start(
    github: GitHub, environment: str, sha: str, text: str, run_id: int, run_attempt: int
) -> Record:
    """Creates the record (status in_progress) of deploying manifest `text` of commit sha."""
    found = manifests.parse(text, "the manifest to deploy")
    if found.commit != sha:
        raise ReleaseError(f"the manifest is of commit {found.commit}, this run of {sha}")
    digest = sha256_of(text)
    created = github.send(
        "POST",
        f"repos/{github.repository}/deployments",
        {
            "ref": sha,
            "environment": environment,
            "task": TASK,
            "auto_merge": False,
            "required_contexts": [],
            "production_environment": False,
            "description": f"manifest {digest}",
            "payload": {
                "manifest": text,
                "manifest_sha256": digest,
                "workflow": CI_PATH,
                "run_id": run_id,
                "run_attempt": run_attempt,
            },
        },
    )
    if not isinstance(created, dict) or not isinstance(created.get("id"), int):
        raise ReleaseError(f"GitHub did not create the deployment record: {created!r}")
    record = Record(created["id"], text, digest, run_id)
    finish(github, record, "in_progress")
    return record


def finish(github: GitHub, record: Record, state: str) -> None:
    if state not in ("in_progress", "success", "failure"):
        raise ReleaseError(f"deployment state {state!r}: one of in_progress, success, failure")
    github.send(
        "POST",
        f"repos/{github.repository}/deployments/{record.deployment_id}/statuses",
        {
            "state": state,
            "description": f"manifest {record.sha256}",
            "log_url": f"https://github.com/{github.repository}/actions/runs/{record.run_id}",
        },
    )


def _from_payload(deployment: dict[str, Any]) -> str | Record:
    """The record the deployment's own fields describe, or why they describe none."""
    number = deployment.get("id")
    task, creator = deployment.get("task"), (deployment.get("creator") or {}).get("login")
    if task != TASK or creator != BOT:
        return f"deployment {number}: task {task!r} created by {creator!r}, not {TASK} by {BOT}"
    payload = deployment.get("payload")
    payload = payload if isinstance(payload, dict) else {}
    text, digest = payload.get("manifest"), payload.get("manifest_sha256")
    run_id, attempt = payload.get("run_id"), payload.get("run_attempt")
    if not isinstance(text, str) or not isinstance(run_id, int) or not isinstance(attempt, int):
        return f"deployment {number}: payload lacks manifest, run_id or run_attempt"
    if sha256_of(text) != digest:
        return f"deployment {number}: its manifest hashes to {sha256_of(text)}, not {digest}"
    record = Record(int(number or 0), text, digest, run_id)
    try:
        commit = record.manifest.commit
    except ReleaseError as error:
        return str(error)
    if commit != deployment.get("sha"):
        return f"deployment {number}: manifest of {commit}, not of its commit"
    return record


def _succeeded(github: GitHub, number: int) -> bool:
    statuses = github.api(f"repos/{github.repository}/deployments/{number}/statuses?per_page=100")
    return any(
        status.get("state") == "success" and (status.get("creator") or {}).get("login") == BOT
        for status in statuses
        if isinstance(status, dict)
    )


def _run_problem(github: GitHub, deployment: dict[str, Any]) -> str | None:
    """Why the run named in the payload is not ci.yml's push run of the commit on main
    whose staging job succeeded, if it is not."""
    number, payload = deployment.get("id"), deployment["payload"]
    run_id, attempt = payload["run_id"], payload["run_attempt"]
    run = github.api(f"repos/{github.repository}/actions/runs/{run_id}")
    expected = {"path": CI_PATH, "event": "push", "head_branch": MAIN}
    expected["head_sha"] = str(deployment.get("sha"))
    seen = {key: run.get(key) if isinstance(run, dict) else None for key in expected}
    if seen != expected:
        return f"deployment {number}: run {run_id} is {seen}, not {expected}"
    jobs = github.api(
        f"repos/{github.repository}/actions/runs/{run_id}/attempts/{attempt}/jobs?per_page=100"
    )
    listed = jobs.get("jobs") or [] if isinstance(jobs, dict) else []
    if not any(j.get("name") == STAGING_JOB and j.get("conclusion") == "success" for j in listed):
        return (
            f"deployment {number}: run {run_id} attempt {attempt}: {STAGING_JOB!r} did not succeed"
        )
    return None


def problem(github: GitHub, deployment: dict[str, Any]) -> str | Record:
    """The record, or why this deployment is not one that counts."""
    found = _from_payload(deployment)
    if isinstance(found, str):
        return found
    if not _succeeded(github, found.deployment_id):
        return f"deployment {found.deployment_id}: no success status from {BOT}"
    return _run_problem(github, deployment) or found


def _records(github: GitHub, environment: str, sha: str | None) -> Iterator[str | Record]:
    """Newest first: each deployment's record, or why it is none."""
    for deployment in github.deployments(environment, sha, task=TASK):
        yield problem(github, deployment)


def promotable(github: GitHub, sha: str, environment: str = "staging") -> Record:
    """The newest record of a successful staging deploy of commit sha."""
    why = []
    for found in _records(github, environment, sha):
        if isinstance(found, Record):
            return found
        why.append(found)
    detail = "; ".join(why) or "no deployment records"
    raise ReleaseError(f"{sha} has no successful {environment} deployment record ({detail})")


def running(github: GitHub, environment: str = "staging") -> Record | None:
    """The record of what the environment runs: its newest successful deploy."""
    for found in _records(github, environment, None):
        if isinstance(found, Record):
            return found
    return None
