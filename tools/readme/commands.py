"""The commands README.md tells a reader to run, and the tasks its task table lists.

A command is a line of a ```bash block (comments dropped, `\\` continuations joined) or
an inline code span whose first word (after `NAME=value` settings) is a program a
reader runs: `make`, `./pants`, a shell script's path, or one of PROGRAMS given
arguments (a `.py` path alone names a file; its commands start with `python3.11`).
"""

from __future__ import annotations

import re
from pathlib import Path

PROGRAMS = frozenset(
    {
        "make",
        "./pants",
        "tilt",
        "kubectl",
        "python3",
        "python3.11",
        "pyenv",
        "brew",
        "rm",
        "pkill",
        "apt-get",
        "pip",
        "git",
        "docker",
        "podman",
    }
)
_BLOCK = re.compile(r"^```(?P<lang>\w*)\n(?P<body>.*?)^```", re.M | re.S)
_SPAN = re.compile(r"`([^`]+)`")
_SETTING = re.compile(r"^[A-Z][A-Z0-9_]*=\S*$")
_SCRIPT = re.compile(r"^\.?[\w.-]*/[\w./-]+\.sh$")
_TABLE_TASK = re.compile(r"^\| `make ([a-z-]+)[^`]*`(?: / `make ([a-z-]+)`)? \|", re.M)


def _normalise(command: str) -> str:
    return " ".join(command.split())


def _strip_comment(line: str) -> str:
    # A `#` after whitespace starts a comment (none of the README's commands quotes one).
    return re.split(r"\s#", line, maxsplit=1)[0] if not line.lstrip().startswith("#") else ""


def _shell_lines(body: str) -> list[str]:
    commands, pending = [], ""
    for raw in body.splitlines():
        line = _strip_comment(raw).rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        command = _normalise(pending + line)
        pending = ""
        if command:
            commands.append(command)
    return commands


def program_of(command: str) -> str:
    words = command.split()
    while words and _SETTING.match(words[0]):
        words.pop(0)
    return words[0] if words else ""


def is_command(span: str) -> bool:
    program = program_of(span)
    if program in ("make", "./pants"):
        return True
    if program in PROGRAMS:
        return program != span  # a bare `git` or `rm` names a program in prose
    return bool(_SCRIPT.match(program))


def readme_commands(markdown: str) -> list[str]:
    """Every command, once, in the order the README first gives it."""
    found: list[str] = []
    for block in _BLOCK.finditer(markdown):
        if block["lang"] in ("bash", "sh", "shell"):
            found += _shell_lines(block["body"])
    prose = _BLOCK.sub("", markdown)
    found += [_normalise(span) for span in _SPAN.findall(prose) if is_command(_normalise(span))]
    return list(dict.fromkeys(found))


def table_tasks(markdown: str) -> set[str]:
    """The make targets the "Common tasks" table has a row for."""
    tasks: set[str] = set()
    for match in _TABLE_TASK.finditer(markdown):
        tasks.update(name for name in match.groups() if name)
    return tasks


def makefile_tasks(makefile: str) -> list[str]:
    """The make targets with a `## description` (what `make help` lists), in order."""
    return re.findall(r"^([a-z][a-z-]*):[^=\n]*?## ", makefile, re.M)


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")
