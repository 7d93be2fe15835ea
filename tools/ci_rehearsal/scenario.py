"""The repositories and the event a rehearsal runs: a bare `origin` whose main is the
commit being rehearsed, a clone act runs in, and for a pull request a branch with a
one-line change to one service, as a developer would push it."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

EVENTS = ("pull_request", "push")
PR_FILE = "services/current_account/main.py"
PR_BRANCH = "rehearsal/one-service-change"
REPOSITORY = "meridian/meridian"
GIT = shutil.which("git") or "/usr/bin/git"
GIT_IDENTITY = (
    "-c",
    "user.name=Meridian CI rehearsal",
    "-c",
    "user.email=ci-rehearsal@meridian.invalid",
)


def git(*args: str, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [GIT, *GIT_IDENTITY, *args], cwd=cwd, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


@dataclass(frozen=True)
class Scenario:
    event: str
    origin: Path
    clone: Path
    event_file: Path
    sha: str


def prepare(source: Path, commit: str, work: Path, event: str) -> Scenario:
    """`commit` of `source` becomes origin's main; a pull request adds one commit on a
    branch. Uncommitted changes in `source` are not part of it."""
    origin = work / "origin.git"
    clone = work / "clone"
    for path in (origin, clone):
        shutil.rmtree(path, ignore_errors=True)
    git("init", "-q", "--bare", "--initial-branch=main", str(origin))
    git("push", "-q", str(origin), f"{commit}:refs/heads/main", cwd=source)
    git("clone", "-q", str(origin), str(clone))
    base = git("rev-parse", "HEAD", cwd=clone)
    payload: dict[str, object] = {
        "repository": {"full_name": REPOSITORY, "name": "meridian", "owner": {"login": "meridian"}},
    }
    if event == "pull_request":
        git("checkout", "-q", "-b", PR_BRANCH, cwd=clone)
        with open(clone / PR_FILE, "a", encoding="utf-8") as file:
            file.write("# A one-line change: the CI rehearsal's sample pull request.\n")
        git("commit", "-q", "-am", "current-account: a one-line change", cwd=clone)
        git("push", "-q", "origin", PR_BRANCH, cwd=clone)
        head = git("rev-parse", "HEAD", cwd=clone)
        payload["number"] = 1
        payload["pull_request"] = {
            "number": 1,
            "head": {"ref": PR_BRANCH, "sha": head},
            "base": {"ref": "main", "sha": base},
        }
        sha = head
    elif event == "push":
        parent = git("rev-parse", "HEAD~1", cwd=clone)
        payload.update({"ref": "refs/heads/main", "before": parent, "after": base})
        sha = base
    else:
        raise ValueError(f"event must be one of {', '.join(EVENTS)}, not {event!r}")
    event_file = work / "event.json"
    event_file.write_text(json.dumps(payload, indent=2))
    return Scenario(event, origin, clone, event_file, sha)
