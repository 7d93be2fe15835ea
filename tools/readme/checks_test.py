"""The README's commands and tasks against the Makefile and the checks that try them.
The commands themselves run in a fresh clone: `make test-readme` (part of `make test`)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from tools.readme.checks import CHECKS, Run, dry_run
from tools.readme.commands import makefile_tasks, read, readme_commands, table_tasks

ROOT = Path()
README = read(ROOT / "README.md")
MAKEFILE = read(ROOT / "Makefile")


def test_every_readme_command_has_exactly_one_check() -> None:
    commands = readme_commands(README)
    unchecked = [c for c in commands if c not in CHECKS]
    assert not unchecked, (
        "README commands with no entry in tools/readme/checks.py (say how each is tried,"
        f" or why it cannot be): {unchecked}"
    )
    stale = [c for c in CHECKS if c not in commands]
    assert not stale, f"checks for commands the README no longer gives: {stale}"


def test_every_make_task_is_in_the_task_table_and_help() -> None:
    tasks = makefile_tasks(MAKEFILE)
    assert {"help", "bootstrap", "services", "bench-images", "clean", "run"} <= set(tasks)
    missing = sorted(set(tasks) - table_tasks(README))
    assert not missing, f"make tasks missing from README's task table: {missing}"
    unknown = sorted(table_tasks(README) - set(tasks))
    assert not unknown, f"README's task table lists tasks the Makefile lacks: {unknown}"


def test_every_make_command_in_the_readme_names_real_tasks() -> None:
    tasks = set(makefile_tasks(MAKEFILE))
    for command in readme_commands(README):
        words = shlex.split(command)
        if "make" not in words:
            continue
        goals = [w for w in words[words.index("make") + 1 :] if "=" not in w]
        assert set(goals) <= tasks, f"{command}: no such make task {set(goals) - tasks}"


def test_commands_are_taken_from_bash_blocks_and_inline_code() -> None:
    markdown = (
        "Run `make` or `FOO=1 make run`; `tools/go.sh --fast` and `tools/go.sh`.\n"
        "Not commands: `git`, `rm`, `DATABASE_URL`, `tools/notes.py`, `pants test ::`.\n"
        "```bash\nmake test   # every test\n# a comment\nA=1 \\\n  ./pants run x:bin\n```\n"
        "```\nmake not-shell\n```\n"
        "Again: `make\ntest`.\n"
    )
    assert readme_commands(markdown) == [
        "make test",
        "A=1 ./pants run x:bin",
        "make",
        "FOO=1 make run",
        "tools/go.sh --fast",
        "tools/go.sh",
    ]


def test_table_rows_name_tasks() -> None:
    table = (
        "| Command | What |\n| --- | --- |\n| `make run` | x |\n"
        "| `make docker` / `make test-images` | y |\n| `make service NAME=x` | z |\n"
    )
    assert table_tasks(table) == {"run", "docker", "test-images", "service"}


@pytest.mark.parametrize(
    ("command", "dry"),
    [
        ("make lint", "make -n lint"),
        (
            "MERIDIAN_ENGINE=podman make docker test-images",
            "MERIDIAN_ENGINE=podman make -n docker test-images",
        ),
    ],
)
def test_a_dry_run_keeps_settings_and_goals(command: str, dry: str) -> None:
    assert dry_run(command) == Run(instead=dry)
