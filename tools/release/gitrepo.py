"""Throwaway git repositories for the release logic's tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

IDENTITY = {
    "GIT_AUTHOR_NAME": "Meridian Test",
    "GIT_AUTHOR_EMAIL": "test@meridian.invalid",
    "GIT_COMMITTER_NAME": "Meridian Test",
    "GIT_COMMITTER_EMAIL": "test@meridian.invalid",
    "GIT_AUTHOR_DATE": "2026-11-26T10:00:00Z",
    "GIT_COMMITTER_DATE": "2026-11-26T10:00:00Z",
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        [  # noqa: S607 - git from the fixed PATH below
            "git",
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "tag.gpgsign=false",
            *args,
        ],
        cwd=repo,
        env={**IDENTITY, "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(repo)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def init(repo: Path, files: dict[str, str]) -> str:
    repo.mkdir(parents=True, exist_ok=True)
    git(repo, "init", "-q")
    return commit(repo, files, "initial")


def commit(repo: Path, files: dict[str, str], message: str) -> str:
    for name, text in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")
