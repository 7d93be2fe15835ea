"""Deploys only move an environment forward (order.py), on real git histories in
temporary repositories, against the stand-in kubectl (see deploy_test.py).

Staging: two pushes whose runs finish out of order, a re-run of an old run, a commit
beside the one staging runs (not its descendant). Production: a release of an older tag,
a version not above production's, a redeploy of the running release. Each refused deploy
is refused before anything is applied.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tools.release import gitrepo
from tools.release.deploy import deploy
from tools.release.errors import ReleaseError
from tools.release.kube import Kubectl
from tools.release.order import newer_version
from tools.release.render import RELEASE_ANNOTATION, VERSION_ANNOTATION
from tools.release.standin_cluster import (
    DIGEST_NEW,
    DIGEST_OLD,
    SERVICES,
    Cluster,
    commit,
    manifest,
    settings,
    write_repo,
)


class History:
    """main: c1 - c2 - c3, and a branch from c1 (`side`); each commit changes the config."""

    def __init__(self, root: Path) -> None:
        write_repo(root, log_level="INFO")
        self.c1 = commit(root, "c1")
        write_repo(root, log_level="WARNING")
        self.c2 = commit(root, "c2")
        write_repo(root, log_level="DEBUG")
        self.c3 = commit(root, "c3")
        gitrepo.git(root, "checkout", "-q", "-b", "side", self.c1)
        write_repo(root, log_level="ERROR")
        self.side = commit(root, "side")
        gitrepo.git(root, "checkout", "-q", self.c3)


@pytest.fixture()
def history(tmp_path: Path) -> tuple[Path, Cluster, History]:
    return tmp_path, Cluster(tmp_path), History(tmp_path)


def run(root: Path, cluster: Cluster, commit_id: str, digest: str, **more: Any) -> None:
    release = manifest(commit_id, dict.fromkeys(SERVICES, digest))
    deploy(settings(root, release, **more), Kubectl(str(cluster.kubectl)))


def running(cluster: Cluster) -> set[str]:
    return {cluster.deployment(name)["annotations"][RELEASE_ANNOTATION] for name in SERVICES}


@pytest.mark.parametrize(
    "older",
    [
        pytest.param("c2", id="an older push's run finishing after a newer one"),
        pytest.param("c1", id="a re-run of an old run"),
        pytest.param("side", id="a commit beside the one running"),
    ],
)
def test_staging_never_moves_back(history: tuple[Path, Cluster, History], older: str) -> None:
    root, cluster, commits = history
    run(root, cluster, commits.c3, DIGEST_NEW)
    cluster.behave()
    with pytest.raises(
        ReleaseError,
        match=f"staging runs release {commits.c3}, and {getattr(commits, older)} is not a "
        "descendant of it: refusing",
    ):
        run(root, cluster, getattr(commits, older), DIGEST_OLD)
    assert not cluster.calls("apply")
    assert running(cluster) == {commits.c3}


def test_pushes_in_order_and_redeploys_are_accepted(
    history: tuple[Path, Cluster, History],
) -> None:
    root, cluster, commits = history
    for commit_id in (commits.c1, commits.c2, commits.c3, commits.c3):
        run(root, cluster, commit_id, DIGEST_NEW)
        assert running(cluster) == {commit_id}


def test_an_explicit_rollback_may_go_back(history: tuple[Path, Cluster, History]) -> None:
    root, cluster, commits = history
    run(root, cluster, commits.c3, DIGEST_NEW)
    run(root, cluster, commits.c1, DIGEST_OLD, allow_rollback=True)
    assert running(cluster) == {commits.c1}


def test_a_running_commit_missing_from_the_history_fails_closed(
    history: tuple[Path, Cluster, History],
) -> None:
    root, cluster, commits = history
    run(root, cluster, commits.c3, DIGEST_NEW)
    cluster.behave()
    # As a shallow checkout would be: the running commit is unknown.
    gitrepo.git(root, "branch", "-q", "-D", "side")
    gitrepo.git(root, "reflog", "expire", "--expire=now", "--all")
    gitrepo.git(root, "gc", "-q", "--prune=now")
    run(root, cluster, commits.side, DIGEST_NEW, allow_rollback=True)  # leaves side running
    with pytest.raises(ReleaseError, match=r"is not in the history of .*fetch-depth: 0"):
        run(root, cluster, commits.c3, DIGEST_NEW)


@pytest.mark.parametrize(
    ("commit_name", "version", "refusal"),
    [
        pytest.param("c3", "1.1.0", "runs version 1.2.0; release 1.1.0 is not newer", id="older"),
        pytest.param(
            "c3", "1.2.0", "runs version 1.2.0; release 1.2.0 is not newer", id="same, other commit"
        ),
        pytest.param(
            "c3", "1.2.0-rc.1", "release 1.2.0-rc.1 is not newer", id="pre-release of running"
        ),
        pytest.param("c1", "1.3.0", "runs release .*, and .* is not a descendant", id="older tag"),
        pytest.param("c3", "1.3.0", None, id="newer version, newer commit"),
        pytest.param("c2", "1.2.0", None, id="redeploy of the running release"),
    ],
)
def test_production_releases_only_move_forward(
    history: tuple[Path, Cluster, History],
    commit_name: str,
    version: str,
    refusal: str | None,
) -> None:
    root, cluster, commits = history
    run(root, cluster, commits.c2, DIGEST_OLD, release_version="1.2.0")
    cluster.behave()
    target = getattr(commits, commit_name)
    if refusal is None:
        run(root, cluster, target, DIGEST_NEW, release_version=version)
        assert running(cluster) == {target}
        assert cluster.deployment("alpha")["annotations"][VERSION_ANNOTATION] == version
        return
    with pytest.raises(ReleaseError, match=refusal):
        run(root, cluster, target, DIGEST_NEW, release_version=version)
    assert not cluster.calls("apply")
    assert running(cluster) == {commits.c2}


@pytest.mark.parametrize(
    ("candidate", "running_version", "newer"),
    [
        ("1.2.1", "1.2.0", True),
        ("1.10.0", "1.9.9", True),
        ("2.0.0", "10.0.0", False),
        ("1.2.0", "1.2.0-rc.2", True),
        ("1.2.0-rc.2", "1.2.0", False),
        ("1.2.0-rc.10", "1.2.0-rc.2", True),
        ("1.2.0-rc.1", "1.2.0-beta.9", True),
        ("1.2.0-alpha.1", "1.2.0-alpha", True),
        ("1.2.0-alpha", "1.2.0-1", True),
        ("1.2.0", "1.2.0", False),
    ],
)
def test_semver_precedence(candidate: str, running_version: str, newer: bool) -> None:
    assert newer_version(candidate, running_version) is newer
