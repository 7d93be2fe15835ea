"""Deploys only move an environment forward.

What an environment runs is recorded on its Deployments (render.py): the release commit
(`meridian.dev/release-commit`) and, in production, the release version
(`meridian.dev/release-version`). A deploy is refused, before anything is applied, when
- the manifest's commit is not that commit or a descendant of it in the repository's
  history (an older staging run finishing late, a re-run of an old job, a release of an
  older tag), unless the deploy is an explicit rollback (`--allow-rollback`);
- the release version is not greater than the one the environment runs (SemVer
  precedence), except the same version of the same commit again (a redeploy).
Both need the full history (`fetch-depth: 0`): a commit the checkout does not have
cannot be ordered, and the deploy fails closed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tools.release.errors import ReleaseError
from tools.release.process import run
from tools.release.render import RELEASE_ANNOTATION, VERSION_ANNOTATION

SEMVER = re.compile(
    r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$"
)


def _annotations(deployments: Iterable[Mapping[str, Any]], name: str) -> set[str]:
    return {
        str(value)
        for item in deployments
        if (value := (item.get("metadata", {}).get("annotations") or {}).get(name))
    }


def _known(repo: Path, commit: str) -> bool:
    try:
        run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=repo)
    except ReleaseError:
        return False
    return True


def is_ancestor(repo: Path, older: str, newer: str) -> bool:
    """Whether `older` is `newer` or one of its ancestors; both must be in the history."""
    for commit in (older, newer):
        if not _known(repo, commit):
            raise ReleaseError(
                f"commit {commit} is not in the history of {repo}: cannot tell whether the "
                "release moves forward (check out with fetch-depth: 0)"
            )
    try:
        run(["git", "merge-base", "--is-ancestor", older, newer], cwd=repo)
    except ReleaseError:
        return False
    return True


def _precedence(version: str) -> tuple[tuple[int, ...], tuple[tuple[int, int | str], ...]]:
    match = SEMVER.match(version)
    if match is None:
        raise ReleaseError(f"release version {version!r} is not SemVer X.Y.Z[-pre]")
    core = tuple(int(part) for part in match.groups()[:3])
    pre = match.group(4)
    if pre is None:
        # A release sorts after every pre-release of the same X.Y.Z.
        return core, ((2, 0),)
    return core, tuple((0, int(part)) if part.isdigit() else (1, part) for part in pre.split("."))


def newer_version(candidate: str, running: str) -> bool:
    """SemVer precedence: candidate > running."""
    new, old = _precedence(candidate), _precedence(running)
    if new[0] != old[0]:
        return new[0] > old[0]
    # Same core: a release beats its pre-releases; pre-release fields compare in turn,
    # numbers below words, and a longer list wins a tie.
    return new[1] > old[1]


def check(
    repo: Path,
    environment: str,
    deployments: Iterable[Mapping[str, Any]],
    commit: str,
    release_version: str | None,
    allow_rollback: bool,
) -> None:
    """Refuses (ReleaseError) a deploy of `commit` that would move `environment` back."""
    deployments = list(deployments)
    if allow_rollback:
        return
    for running in sorted(_annotations(deployments, RELEASE_ANNOTATION)):
        if not is_ancestor(repo, running, commit):
            raise ReleaseError(
                f"{environment} runs release {running}, and {commit} is not a descendant of "
                "it: refusing to move it back (an older run finishing late, or a re-run of "
                "an old job); deploy with --allow-rollback to roll back on purpose"
            )
    if not release_version:
        return
    for version in sorted(_annotations(deployments, VERSION_ANNOTATION)):
        same_release = _annotations(deployments, RELEASE_ANNOTATION) == {commit}
        if version == release_version and same_release:
            continue
        if not newer_version(release_version, version):
            raise ReleaseError(
                f"{environment} runs version {version}; release {release_version} is not "
                "newer (releases only move forward; --allow-rollback to go back on purpose)"
            )
