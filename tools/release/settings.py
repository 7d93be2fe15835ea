"""Repository settings as code, applied with `gh api` by a repository admin:

- `.github/rulesets/*.json`: repository rulesets (branch and tag rules), created or
  updated by name;
- `.github/environments/*.json`: deployment environments and the only branches or tags
  that may deploy to them, e.g. production from `v*` tags only:

      {"name": "production", "prevent_self_review": true, "require_reviewers": true,
       "deployment_policies": [{"name": "v*", "type": "tag"}]}

  Reviewers are people and teams of the organisation, so they are chosen in GitHub's
  settings; with `require_reviewers` the environment must already have some, or nothing
  is applied.

Every file is read and checked, and every environment's current reviewers fetched,
before the first write.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.release.errors import ReleaseError
from tools.release.github import GitHub

POLICY_TYPES = ("branch", "tag")


@dataclass(frozen=True)
class Environment:
    name: str
    prevent_self_review: bool
    require_reviewers: bool
    policies: tuple[tuple[str, str], ...]


def _read(path: Path) -> dict[str, Any]:
    try:
        body = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ReleaseError(f"{path} is not JSON ({error})") from None
    if not isinstance(body, dict):
        raise ReleaseError(f"{path}: expected a JSON object")
    return body


def read_rulesets(directory: Path) -> list[dict[str, Any]]:
    rulesets = []
    for path in sorted(directory.glob("*.json")):
        body = _read(path)
        missing = [key for key in ("name", "target", "enforcement", "rules") if key not in body]
        if missing:
            raise ReleaseError(f"{path}: a ruleset needs {missing} (GitHub's ruleset JSON)")
        rulesets.append(body)
    if not rulesets:
        raise ReleaseError(f"no rulesets in {directory}")
    return rulesets


def read_environments(directory: Path) -> list[Environment]:
    environments = []
    for path in sorted(directory.glob("*.json")):
        body = _read(path)
        name, policies = body.get("name"), body.get("deployment_policies")
        if not isinstance(name, str) or path.stem != name:
            raise ReleaseError(f'{path}: "name" must be the file\'s name, {path.stem!r}')
        if not isinstance(policies, list) or not policies:
            raise ReleaseError(
                f'{path}: "deployment_policies" must list [{{"name": "main", "type": "branch"}}, ...]'
            )
        pairs = []
        for policy in policies:
            if not isinstance(policy, dict) or policy.get("type") not in POLICY_TYPES:
                raise ReleaseError(
                    f"{path}: policy {policy!r} needs a name and a type in {POLICY_TYPES}"
                )
            pairs.append((str(policy["name"]), str(policy["type"])))
        environments.append(
            Environment(
                name=name,
                prevent_self_review=bool(body.get("prevent_self_review", False)),
                require_reviewers=bool(body.get("require_reviewers", False)),
                policies=tuple(pairs),
            )
        )
    return environments


def current_reviewers(github: GitHub, name: str) -> list[dict[str, Any]]:
    """The environment's reviewers as the API takes them; none for a new environment."""
    try:
        found = github.api(f"repos/{github.repository}/environments/{name}")
    except ReleaseError as error:
        if "404" in str(error) or "Not Found" in str(error):
            return []
        raise
    reviewers = []
    for rule in found.get("protection_rules", []) if isinstance(found, dict) else []:
        if rule.get("type") == "required_reviewers":
            reviewers += [
                {"type": item["type"], "id": item["reviewer"]["id"]}
                for item in rule.get("reviewers", [])
            ]
    return reviewers


def apply(github: GitHub, rulesets_dir: Path, environments_dir: Path) -> list[str]:
    """Applies every file; what was done, one line each."""
    rulesets = read_rulesets(rulesets_dir)
    environments = read_environments(environments_dir)
    reviewers = {
        environment.name: current_reviewers(github, environment.name)
        for environment in environments
    }
    unreviewed = [
        env.name for env in environments if env.require_reviewers and not reviewers[env.name]
    ]
    if unreviewed:
        raise ReleaseError(
            f"environments {unreviewed} need required reviewers: add them in the repository's "
            "Settings > Environments, then apply again (nothing was changed)"
        )
    existing = {
        ruleset["name"]: ruleset["id"]
        for ruleset in github.api(f"repos/{github.repository}/rulesets?per_page=100")
    }
    done = []
    for ruleset in rulesets:
        if ruleset["name"] in existing:
            github.send(
                "PUT", f"repos/{github.repository}/rulesets/{existing[ruleset['name']]}", ruleset
            )
            done.append(f"ruleset {ruleset['name']!r}: updated")
        else:
            github.send("POST", f"repos/{github.repository}/rulesets", ruleset)
            done.append(f"ruleset {ruleset['name']!r}: created")
    for environment in environments:
        done += apply_environment(github, environment, reviewers[environment.name])
    return done


def apply_environment(
    github: GitHub, environment: Environment, reviewers: list[dict[str, Any]]
) -> list[str]:
    base = f"repos/{github.repository}/environments/{environment.name}"
    body: dict[str, Any] = {
        "prevent_self_review": environment.prevent_self_review,
        "deployment_branch_policy": {"protected_branches": False, "custom_branch_policies": True},
    }
    if reviewers:
        body["reviewers"] = reviewers
    github.send("PUT", base, body)
    done = [f"environment {environment.name!r}: {len(reviewers)} reviewer(s) kept"]
    found = github.api(f"{base}/deployment-branch-policies?per_page=100")
    policies = found.get("branch_policies", []) if isinstance(found, dict) else []
    present = {
        (str(policy["name"]), str(policy.get("type", "branch"))): policy["id"]
        for policy in policies
    }
    for key, policy_id in present.items():
        if key not in environment.policies:
            github.send("DELETE", f"{base}/deployment-branch-policies/{policy_id}")
            done.append(f"environment {environment.name!r}: removed {key[1]} {key[0]!r}")
    for name, kind in environment.policies:
        if (name, kind) not in present:
            github.send("POST", f"{base}/deployment-branch-policies", {"name": name, "type": kind})
            done.append(f"environment {environment.name!r}: only {kind} {name!r} may deploy")
    return done
