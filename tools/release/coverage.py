"""Does the affected-only rule (affected.py) see every file? `make lint` runs this.

A changed file affects what Pants says depends on its owner. That misses a file whose
owner nothing depends on while something outside Pants' graph reads it: tool settings
in pyproject.toml that every lint and test run reads, the base image's rootfs builder,
which tools/images/build.sh runs. So every tracked file must be one of
- a global input (affected.GLOBAL_INPUTS: everything is affected);
- owned by no target (also everything: affected.py treats it so);
- owned by a test, image or binary target (a change affects that test or artifact);
- owned by a target that some other target depends on (a change reaches its dependents);
- an empty `__init__.py` (Pants infers dependencies on one only once it has content,
  so the change that gives it content reaches its importers).
What is left is listed and fails the check: make it a global input, or declare what
reads it as a dependent in its BUILD file.

Every image must reach the image pipeline (tools/images:pipeline, the scripts that build
and check images outside Pants) through its dependencies, so that a change to one of
those scripts rebuilds every image.

It also keeps the instruments apart from the product: benchmarks and demos live under
bench/ and may import anything, but no Python file outside bench/ may import from it
(a product module using a benchmark, or a test leaning on one).
"""

from __future__ import annotations

import ast
import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.release.affected import GLOBAL_INPUTS, PantsRunner, is_global, pants_runner
from tools.release.process import run

# Targets a change to whose files is seen by itself: tests run, images and binaries build.
SEEN_BY_ITSELF = frozenset(
    {"python_test", "python_tests", "python_test_utils", "docker_image", "pex_binary"}
)
# What builds and checks every image outside Pants: each docker_image must reach it.
IMAGE_PIPELINE = "tools/images:pipeline"
# Benchmarks and demos (the `bench` package): nothing outside it may import from it.
INSTRUMENTS = "bench"


@dataclass(frozen=True)
class Coverage:
    global_files: tuple[str, ...]
    unowned: tuple[str, ...]
    owned: tuple[str, ...]
    missed: tuple[tuple[str, str], ...]  # (file, its owners)
    # (file outside bench/, the bench module it imports)
    on_instruments: tuple[tuple[str, str], ...] = ()
    # docker_image targets whose dependencies do not reach IMAGE_PIPELINE
    images_off_pipeline: tuple[str, ...] = ()


def classify(
    targets: Iterable[Mapping[str, Any]],
    tracked: Iterable[str],
    global_inputs: Iterable[str] = GLOBAL_INPUTS,
    empty: Iterable[str] = (),
) -> Coverage:
    """Sorts the tracked files by why a change to them is seen (`pants peek ::` targets)."""
    targets, patterns, empty = list(targets), tuple(global_inputs), frozenset(empty)
    sources = {str(t["address"]): frozenset(map(str, t.get("sources") or [])) for t in targets}
    kinds = {str(t["address"]): str(t.get("target_type")) for t in targets}

    def generates(parent: str, child: str) -> bool:
        # A target generator depends on the targets it generates (its files, one each).
        own = sources.get(child, frozenset())
        return parent != child and bool(own) and own <= sources.get(parent, frozenset())

    depended_on = {
        str(dependency)
        for target in targets
        for dependency in target.get("dependencies") or []
        if not generates(str(target["address"]), str(dependency))
        and str(dependency) != str(target["address"])
    }
    owners: dict[str, set[str]] = {}
    for address, paths in sources.items():
        for path in paths:
            owners.setdefault(path, set()).add(address)
    global_files, unowned, owned, missed = [], [], [], []
    for path in sorted(set(tracked)):
        found = owners.get(path, set())
        if is_global(path, patterns):
            global_files.append(path)
        elif not found:
            unowned.append(path)
        elif (
            path in empty
            and path.endswith("__init__.py")
            or any(kinds[owner] in SEEN_BY_ITSELF or owner in depended_on for owner in found)
        ):
            owned.append(path)
        else:
            missed.append((path, ", ".join(sorted(found))))
    return Coverage(
        tuple(global_files),
        tuple(unowned),
        tuple(owned),
        tuple(missed),
        images_off_pipeline=tuple(images_not_reaching(targets, IMAGE_PIPELINE)),
    )


def images_not_reaching(targets: Iterable[Mapping[str, Any]], required: str) -> list[str]:
    """The docker_image targets from which no chain of dependencies leads to required."""
    targets = list(targets)
    edges = {str(t["address"]): [str(d) for d in t.get("dependencies") or []] for t in targets}
    missing = []
    for target in targets:
        if target.get("target_type") != "docker_image":
            continue
        seen, todo = set(), [str(target["address"])]
        while todo and required not in seen:
            address = todo.pop()
            if address not in seen:
                seen.add(address)
                todo += edges.get(address, [])
        if required not in seen:
            missing.append(str(target["address"]))
    return sorted(missing)


def instrument_imports(sources: Mapping[str, str]) -> list[tuple[str, str]]:
    """(file, module) for every import of the bench package by a file outside bench/."""
    found = []
    for path, text in sorted(sources.items()):
        if path.startswith(f"{INSTRUMENTS}/"):
            continue
        for node in ast.walk(ast.parse(text, filename=path)):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                modules = [node.module]
            else:
                continue
            found += [
                (path, module)
                for module in modules
                if module == INSTRUMENTS or module.startswith(f"{INSTRUMENTS}.")
            ]
    return found


def peek(pants: PantsRunner) -> list[dict[str, Any]]:
    found = json.loads(pants(["peek", "::"]))
    if not isinstance(found, list):
        raise ValueError(f"pants peek answered {type(found).__name__}, not a list of targets")
    return found


def check(repo: Path, pants: PantsRunner | None = None) -> Coverage:
    tracked = run(["git", "ls-files"], cwd=repo).splitlines()
    empty = [
        path for path in tracked if (repo / path).is_file() and not (repo / path).stat().st_size
    ]
    found = classify(peek(pants or pants_runner(repo)), tracked, empty=empty)
    python = {path: (repo / path).read_text() for path in tracked if path.endswith(".py")}
    return dataclasses.replace(found, on_instruments=tuple(instrument_imports(python)))
