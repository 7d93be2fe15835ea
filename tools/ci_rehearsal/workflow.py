"""The copy of a workflow the rehearsal gives act: the same jobs and steps, except those
contracts.NOT_REHEARSED names, which print "not rehearsed: <reason>" instead, and, when
only some jobs are asked for, without the others. The repository's file is not changed:
the jobs still check out and run the committed tree."""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence
from typing import Any

import yaml

from tools.ci_rehearsal.contracts import NOT_REHEARSED, Skip


class WorkflowError(Exception):
    pass


def _notice(message: str) -> dict[str, Any]:
    return {"run": f"printf '%s\\n' {shlex.quote('not rehearsed: ' + message)}"}


def _needs(job: dict[str, Any]) -> list[str]:
    needs = job.get("needs", [])
    return [needs] if isinstance(needs, str) else list(needs)


def selected_jobs(jobs: dict[str, Any], wanted: Iterable[str]) -> set[str]:
    """The jobs asked for and every job they need."""
    keep: set[str] = set()
    pending = list(wanted)
    while pending:
        name = pending.pop()
        if name not in jobs:
            raise WorkflowError(f"no job {name!r} (jobs: {', '.join(jobs)})")
        if name not in keep:
            keep.add(name)
            pending += _needs(jobs[name])
    return keep


def apply_skip(jobs: dict[str, Any], skip: Skip) -> None:
    job = jobs.get(skip.job)
    if job is None:
        raise WorkflowError(f"{skip.workflow} has no job {skip.job!r} to leave out")
    if not skip.step:
        kept = {key: job[key] for key in ("name", "needs", "if") if key in job}
        jobs[skip.job] = {
            **kept,
            "runs-on": job.get("runs-on", "ubuntu-24.04"),
            "steps": [{"name": "not rehearsed", **_notice(f"{skip.job}: {skip.reason}")}],
        }
        return
    for index, step in enumerate(job.get("steps", [])):
        if step.get("name") == skip.step:
            kept = {key: step[key] for key in ("id", "name", "if") if key in step}
            job["steps"][index] = {**kept, **_notice(f"{skip.job}: {skip.step}: {skip.reason}")}
            return
    raise WorkflowError(f"{skip.workflow} job {skip.job!r} has no step named {skip.step!r}")


def rehearsal_copy(
    text: str,
    workflow: str,
    event: str,
    jobs: Sequence[str] = (),
    skips: Sequence[Skip] = NOT_REHEARSED,
) -> str:
    data = yaml.safe_load(text)
    # YAML 1.1 reads the key `on` as true.
    if True in data:
        data["on"] = data.pop(True)
    all_jobs: dict[str, Any] = data["jobs"]
    for skip in skips:
        if skip.workflow == workflow and skip.event in ("", event):
            apply_skip(all_jobs, skip)
    if jobs:
        keep = selected_jobs(all_jobs, jobs)
        data["jobs"] = {name: job for name, job in all_jobs.items() if name in keep}
    return yaml.safe_dump(data, sort_keys=False, width=1000)
