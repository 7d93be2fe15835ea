"""The edits the dev-loop benchmark makes in its scratch clone."""

from __future__ import annotations

import re
from pathlib import Path


class BenchError(RuntimeError):
    pass


def insert_marker(path: Path, token: str) -> None:
    """A line that prints `token` when the module is imported, before its first import."""
    lines = path.read_text().splitlines(keepends=True)
    first_import = next(
        (
            index
            for index, line in enumerate(lines)
            if line.startswith(("import ", "from ")) and "__future__" not in line
        ),
        len(lines),
    )
    lines.insert(first_import, f'print("devloop-bench {token}", flush=True)\n')
    path.write_text("".join(lines))


def toggle_setting(stack_file: Path, process: str, key: str, values: tuple[str, str]) -> str:
    """Flip `key` in `process`'s env between the two values; returns the new value."""
    text = stack_file.read_text()
    block = re.search(rf"^  - name: {re.escape(process)}\n(?:(?!  - name:).*\n?)*", text, re.M)
    if block is None:
        raise BenchError(f"{stack_file}: no process {process}")
    setting = re.compile(rf"^(\s+{re.escape(key)}: )(\S+)$", re.M)
    found = setting.search(block[0])
    if found is None:
        raise BenchError(f"{stack_file}: {process} has no {key}")
    new = values[1] if found[2] == values[0] else values[0]
    edited = setting.sub(lambda m: m[1] + new, block[0], count=1)
    stack_file.write_text(text[: block.start()] + edited + text[block.end() :])
    return new


def toggle_patch_value(overlay: Path, key: str, values: tuple[str, str]) -> str:
    """Flip the value a kustomize JSON patch sets for /data/KEY between the two values."""
    text = overlay.read_text()
    pattern = re.compile(rf"(path: /data/{re.escape(key)}, value: )(\S+?)(\}})")
    found = pattern.search(text)
    if found is None:
        raise BenchError(f"{overlay}: no patch sets /data/{key}")
    new = values[1] if found[2] == values[0] else values[0]
    overlay.write_text(pattern.sub(lambda m: m[1] + new + m[3], text, count=1))
    return new
