"""Whether a release may go to production, and exactly what it deploys.

A release names a version and a commit. It is promoted only if the tag vVERSION points
at that commit, the commit is on main, its `ci` summary check passed and a staging
deploy of it succeeded as GitHub's record of that deploy shows (record.py); it then
deploys the manifest that record holds, byte for byte (its sha256 checked): the
digests staging ran, nothing rebuilt, no artifact of whichever run came last.
"""

from __future__ import annotations

from pathlib import Path

from tools.release import record
from tools.release.buildinfo import RELEASE_TAG
from tools.release.errors import ReleaseError
from tools.release.github import GitHub
from tools.release.manifest import COMMIT
from tools.release.process import run
from tools.release.record import Record


def check_version(version: str) -> str:
    tag = f"v{version}"
    if not RELEASE_TAG.match(tag):
        raise ReleaseError(
            f"version {version!r} is not a release version: X.Y.Z or X.Y.Z-pre (SemVer, no 'v')"
        )
    return tag


def check_commit(repo: Path, version: str, commit: str, main_ref: str) -> None:
    tag = check_version(version)
    if not COMMIT.match(commit):
        raise ReleaseError(f"commit {commit!r} is not a full 40-hex commit id")
    try:
        tagged = run(
            ["git", "rev-parse", "--verify", f"refs/tags/{tag}^{{commit}}"], cwd=repo
        ).strip()
    except ReleaseError:
        raise ReleaseError(f"tag {tag} does not exist (fetch tags: fetch-depth: 0)") from None
    if tagged != commit:
        raise ReleaseError(f"tag {tag} points at {tagged}, not at the release commit {commit}")
    try:
        run(["git", "merge-base", "--is-ancestor", commit, main_ref], cwd=repo)
    except ReleaseError:
        raise ReleaseError(
            f"{commit} is not on {main_ref}: only commits on main are released"
        ) from None


def verify(repo: Path, github: GitHub, version: str, commit: str, main_ref: str) -> Record:
    """The staging record whose manifest to deploy; a ReleaseError names the first check
    that failed."""
    check_commit(repo, version, commit, main_ref)
    if not github.check_passed(commit):
        raise ReleaseError(f"the `ci` summary check of {commit} did not pass")
    return record.promotable(github, commit)
