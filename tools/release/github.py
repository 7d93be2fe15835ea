"""GitHub's API through the `gh` CLI: deployments and their statuses (record.py keeps
the staging record of each manifest there), check runs, workflow runs and their jobs
and artifacts."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from tools.release.errors import ReleaseError
from tools.release.process import run

CI_CHECK = "ci"
ACTIONS_APP = "github-actions"


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

    def deployments(
        self, environment: str, sha: str | None = None, task: str | None = None
    ) -> list[dict[str, Any]]:
        """Newest first, as the API lists them."""
        query = f"environment={environment}&per_page=100"
        query += (f"&sha={sha}" if sha else "") + (f"&task={task}" if task else "")
        found = self.api(f"repos/{self.repository}/deployments?{query}")
        if not isinstance(found, list):
            raise ReleaseError(f"GitHub deployments of {environment}: unexpected answer {found!r}")
        return found

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
