"""Writes the stand-in actions act maps the pinned `uses:` to (`--local-repository
owner/repo@sha=DIR`): an action.yml with the contract's inputs and outputs, and node
entry points that hand over to standins.py. A developer with checkouts of the real
actions at their pinned commits maps those instead (`--real-actions DIR`)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

import yaml

from tools.ci_rehearsal.contracts import CONTRACTS, Contract

PINNED = re.compile(r"^\s*-?\s*uses:\s*([\w.-]+/[\w./-]+)@([0-9a-f]{40})", re.MULTILINE)
ENTRY = """// Stand-in for {name} in Meridian's CI rehearsal: tools/ci_rehearsal/standins.py.
const {{ spawnSync }} = require("child_process");
const env = {{ ...process.env, PYTHONPATH: {root} }};
const result = spawnSync({python}, ["-m", "tools.ci_rehearsal.standins", {name_js}, {phase}], {{ stdio: "inherit", env, cwd: {root} }});
process.exit(result.status === null ? 1 : result.status);
"""


class ActionsError(Exception):
    pass


def pinned_actions(files: Iterable[Path]) -> dict[str, str]:
    """`uses:` name -> pinned commit, over every workflow and local action."""
    found: dict[str, str] = {}
    for file in files:
        for name, sha in PINNED.findall(file.read_text()):
            if found.setdefault(name, sha) != sha:
                raise ActionsError(f"{name} is pinned to two commits ({found[name]}, {sha})")
    return found


def action_yaml(contract: Contract) -> str:
    runs: dict[str, str] = {"using": "node20", "main": "main.js"}
    if contract.post:
        runs["post"] = "post.js"
    document = {
        "name": f"{contract.name} (rehearsal stand-in)",
        "description": "Implements the action's documented contract; see tools/ci_rehearsal.",
        "inputs": {name: {"default": default} for name, default in contract.inputs.items()},
        "outputs": {name: {"description": name} for name in contract.outputs},
        "runs": runs,
    }
    return yaml.safe_dump(document, sort_keys=False)


def write_standin(contract: Contract, dest: Path, root: Path, python: str) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "action.yml").write_text(action_yaml(contract))
    for phase in ("main", "post") if contract.post else ("main",):
        (dest / f"{phase}.js").write_text(
            ENTRY.format(
                name=contract.name,
                name_js=json.dumps(contract.name),
                root=json.dumps(str(root)),
                python=json.dumps(python),
                phase=json.dumps(phase),
            )
        )


def local_repositories(
    pinned: dict[str, str], work: Path, root: Path, python: str, real_actions: Path | None
) -> list[str]:
    """act's `--local-repository` values: the real action's checkout when `real_actions`
    has `owner/repo`, else a stand-in this writes under `work`."""
    mappings: dict[str, str] = {}
    for name, sha in sorted(pinned.items()):
        contract = CONTRACTS.get(name)
        if contract is None:
            raise ActionsError(f"{name} has no contract in tools/ci_rehearsal/contracts.py")
        key = f"{contract.repository}@{sha}"
        if real_actions is not None and (real_actions / contract.repository).is_dir():
            mappings[key] = str(real_actions / contract.repository)
            continue
        repository_dir = work / "actions" / contract.repository
        write_standin(contract, repository_dir / contract.subpath, root, python)
        mappings[key] = str(repository_dir)
    return [f"{key}={directory}" for key, directory in mappings.items()]
