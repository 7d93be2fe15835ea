"""What a change affects: the Pants specs to lint and test and the services to build.

Pants maps changed files to the targets that own them and their dependents. A changed
file that no target owns (pants.toml, lockfiles, BUILD macros, build scripts, files
Pants ignores, deleted files) could change anything, as could the inputs listed in
GLOBAL_INPUTS even where a target owns them: then everything is affected. Unowned files
are found by asking Pants which files its targets own, not from a hand-kept list.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tools.release import catalog
from tools.release.errors import ReleaseError
from tools.release.process import run

# Inputs of every build and test, whether or not a target owns them.
GLOBAL_INPUTS = (
    "pants",
    "pants.toml",
    "pants.ci.toml",
    # ruff, black, mypy and pytest settings: read by every lint, type check and test.
    "pyproject.toml",
    "build-support/*",
    # What ./pants runs to install Pants, and what installs the host's interpreters and
    # servers (PostgreSQL, Redis) that every test runs on.
    "tools/bootstrap/*",
    "tools/prerequisites.sh",
    "tools/prerequisites/*",
    # The services' resolve, and the locks ./pants installs uv, Pants and pex from. The
    # other tool locks (3rdparty/tools) are files their readers depend on, and the base
    # image's package lists are its dependencies, so a change there reaches every image.
    "3rdparty/python/*",
    "3rdparty/pants/*",
)
# A test is read by its own run only, wherever it lives (tools/bootstrap's tests too): a
# change to one runs that test, not everything.
TEST_FILES = ("*_test.py", "test_*.py")
EVERYTHING = ("::",)

PantsRunner = Callable[[list[str]], str]


@dataclass(frozen=True)
class Affected:
    base: str | None
    changed_files: tuple[str, ...]
    everything: bool
    reasons: tuple[str, ...]
    services: tuple[str, ...]
    pants_args: tuple[str, ...] = field(default=())

    def to_json(self) -> str:
        return json.dumps(
            {
                "base": self.base,
                "everything": self.everything,
                "reasons": list(self.reasons),
                "services": list(self.services),
                "pants_args": list(self.pants_args),
                "changed_files": list(self.changed_files),
            },
            indent=2,
        )


def pants_runner(repo: Path) -> PantsRunner:
    def invoke(arguments: list[str]) -> str:
        return run(["./pants", *arguments], cwd=repo)

    return invoke


def changed_files(repo: Path, base: str) -> list[str]:
    """Files that differ between base and the working tree, untracked ones included."""
    try:
        run(["git", "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}"], cwd=repo)
    except ReleaseError:
        raise ReleaseError(
            f"base {base!r} is not a commit in {repo} (fetch full history: fetch-depth: 0)"
        ) from None
    tracked = run(["git", "diff", "--name-only", "--no-renames", base], cwd=repo).split("\n")
    untracked = run(["git", "ls-files", "--others", "--exclude-standard"], cwd=repo).split("\n")
    return sorted({path for path in (*tracked, *untracked) if path})


def is_global(path: str, patterns: Iterable[str] = GLOBAL_INPUTS) -> bool:
    if any(fnmatch.fnmatchcase(path.rpartition("/")[2], name) for name in TEST_FILES):
        return False
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in patterns)


def owned_files(pants: PantsRunner) -> set[str]:
    """Every file some target owns (sources, and the BUILD files that declare them)."""
    return {line.strip() for line in pants(["filedeps", "::"]).splitlines() if line.strip()}


def all_services(repo: Path) -> list[str]:
    """Every service in the catalog, by name."""
    return [service.name for service in catalog.services(repo)]


def affected_services(repo: Path, pants: PantsRunner, base: str) -> list[str]:
    listed = pants(
        [
            f"--changed-since={base}",
            "--changed-dependents=transitive",
            "--filter-target-type=docker_image",
            "list",
        ]
    )
    images = {line.strip() for line in listed.splitlines()}
    return [s.name for s in catalog.services(repo) if s.image_target in images]


def compute(repo: Path, base: str | None, pants: PantsRunner | None = None) -> Affected:
    """What the change from base to the working tree affects; base None: everything."""
    pants = pants or pants_runner(repo)
    services = all_services(repo)
    if base is None:
        return Affected(
            base=None,
            changed_files=(),
            everything=True,
            reasons=("no base commit to compare with",),
            services=tuple(services),
            pants_args=EVERYTHING,
        )
    files = changed_files(repo, base)
    reasons = [f"{path}: global input" for path in files if is_global(path)]
    owned = owned_files(pants) if files else set()
    reasons += [
        f"{path}: no Pants target owns it"
        for path in files
        if not is_global(path) and path not in owned
    ]
    if reasons:
        return Affected(
            base=base,
            changed_files=tuple(files),
            everything=True,
            reasons=tuple(reasons),
            services=tuple(services),
            pants_args=EVERYTHING,
        )
    return Affected(
        base=base,
        changed_files=tuple(files),
        everything=False,
        reasons=(),
        services=tuple(affected_services(repo, pants, base)) if files else (),
        pants_args=(f"--changed-since={base}", "--changed-dependents=transitive"),
    )
