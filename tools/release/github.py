"""The GitHub records a release is promoted from, read with the `gh` CLI.

- deployments of the `staging` environment and their statuses (GitHub writes these for
  every job that names an environment: success when the deploy job succeeded);
- the `ci` summary check run of a commit;
- the `release-manifest` artifact of the CI workflow run that built a commit.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.release import manifest as manifests
from tools.release.errors import ReleaseError
from tools.release.process import run

CI_WORKFLOW = "ci.yml"
CI_CHECK = "ci"
ACTIONS_APP = "github-actions"
MANIFEST_ARTIFACT = "release-manifest"
MANIFEST_FILE = "release-manifest.json"


@dataclass(frozen=True)
class GitHub:
    repository: str
    executable: str = "gh"

    def api(self, path: str) -> Any:
        text = run([self.executable, "api", "-H", "Accept: application/vnd.github+json", path])
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise ReleaseError(f"GitHub API {path} did not answer JSON ({error})") from None

    def send(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """A write (POST, PUT, DELETE) to the API; the answer's JSON, or None if empty."""
        argv = [
            self.executable,
            "api",
            "--method",
            method,
            "-H",
            "Accept: application/vnd.github+json",
        ]
        if body is not None:
            argv += ["--input", "-"]
        text = run([*argv, path], input_text=None if body is None else json.dumps(body))
        return json.loads(text) if text.strip() else None

    def deployments(self, environment: str, sha: str | None = None) -> list[dict[str, Any]]:
        """Newest first, as the API lists them."""
        query = f"environment={environment}&per_page=100" + (f"&sha={sha}" if sha else "")
        found = self.api(f"repos/{self.repository}/deployments?{query}")
        if not isinstance(found, list):
            raise ReleaseError(f"GitHub deployments of {environment}: unexpected answer {found!r}")
        return found

    def statuses(self, deployment_id: int) -> list[str]:
        """States of one deployment's statuses, newest first."""
        found = self.api(
            f"repos/{self.repository}/deployments/{deployment_id}/statuses?per_page=100"
        )
        return [status.get("state", "") for status in found if isinstance(status, dict)]

    def last_successful_deployment(self, environment: str) -> str | None:
        """The commit of the newest deployment to environment whose latest status is success."""
        for deployment in self.deployments(environment):
            states = self.statuses(int(deployment["id"]))
            if states and states[0] == "success":
                return str(deployment["sha"])
        return None

    def deployment_succeeded(self, environment: str, sha: str) -> bool:
        """Whether commit sha was ever deployed to environment successfully (a later
        deploy marks it inactive, which keeps its success status in the history)."""
        return any(
            "success" in self.statuses(int(deployment["id"]))
            for deployment in self.deployments(environment, sha)
        )

    def check_passed(self, sha: str, name: str = CI_CHECK) -> bool:
        """Whether GitHub Actions' latest check run `name` on sha succeeded (a check of
        the same name from another app does not count)."""
        found = self.api(
            f"repos/{self.repository}/commits/{sha}/check-runs?check_name={name}&filter=latest"
        )
        runs = found.get("check_runs", []) if isinstance(found, dict) else []
        return any(
            run.get("conclusion") == "success" and run.get("app", {}).get("slug") == ACTIONS_APP
            for run in runs
        )

    def ci_runs(self, sha: str) -> list[int]:
        """Ids of the push-triggered CI runs of commit sha, newest first."""
        found = self.api(
            f"repos/{self.repository}/actions/workflows/{CI_WORKFLOW}/runs"
            f"?head_sha={sha}&event=push&per_page=20"
        )
        runs = found.get("workflow_runs", []) if isinstance(found, dict) else []
        return [int(run["id"]) for run in runs]

    def manifest_of(self, sha: str) -> manifests.Manifest:
        """The release manifest that commit sha's CI run built and recorded."""
        for run_id in self.ci_runs(sha):
            with tempfile.TemporaryDirectory() as directory:
                try:
                    run(
                        [
                            self.executable,
                            "run",
                            "download",
                            str(run_id),
                            "--repo",
                            self.repository,
                            "--name",
                            MANIFEST_ARTIFACT,
                            "--dir",
                            directory,
                        ]
                    )
                except ReleaseError:
                    continue
                found = manifests.load(Path(directory) / MANIFEST_FILE)
            if found.commit != sha:
                raise ReleaseError(
                    f"CI run {run_id} of {sha} recorded a manifest of commit {found.commit}"
                )
            return found
        raise ReleaseError(
            f"no CI run of {sha} has a {MANIFEST_ARTIFACT} artifact (expired, or never built on main)"
        )

    def artifact_names(self, run_id: int) -> set[str]:
        found = self.api(f"repos/{self.repository}/actions/runs/{run_id}/artifacts?per_page=100")
        artifacts = found.get("artifacts", []) if isinstance(found, dict) else []
        return {str(artifact.get("name")) for artifact in artifacts}

    def job(self, run_id: int, attempt: int, name: str) -> dict[str, Any] | None:
        found = self.api(
            f"repos/{self.repository}/actions/runs/{run_id}/attempts/{attempt}/jobs?per_page=100"
        )
        jobs = found.get("jobs", []) if isinstance(found, dict) else []
        return next((job for job in jobs if job.get("name") == name), None)

    def wait_for_artifact(
        self,
        run_id: int,
        attempt: int,
        artifact: str,
        job_name: str,
        seconds: float,
        poll: float = 5,
    ) -> bool:
        """Waits until run_id has the artifact (True), or until job_name, which makes it,
        succeeded without it (False: nothing to make). Its failure, or the time running
        out, is a ReleaseError."""
        deadline = time.monotonic() + seconds
        while True:
            if artifact in self.artifact_names(run_id):
                return True
            job = self.job(run_id, attempt, job_name)
            if job is not None and job.get("status") == "completed":
                if job.get("conclusion") != "success":
                    raise ReleaseError(
                        f"job {job_name!r} ended {job.get('conclusion')} without making {artifact}"
                    )
                # It may have uploaded just before completing.
                return artifact in self.artifact_names(run_id)
            if time.monotonic() + poll > deadline:
                raise ReleaseError(
                    f"no {artifact} artifact from {job_name!r} within {seconds:.0f} s"
                )
            time.sleep(poll)
