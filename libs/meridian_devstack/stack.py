"""The declarative list of local processes (deployments/local/processes.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class StackFileError(Exception):
    pass


@dataclass(frozen=True)
class Process:
    name: str
    cmd: tuple[str, ...]
    port: int
    build: tuple[str, ...] = ()
    ready_path: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    labels: tuple[str, ...] = ()
    deps: tuple[str, ...] = ()


def _field(entry: dict[str, Any], key: str, kind: type, where: str, required: bool = True) -> Any:
    if key not in entry:
        if required:
            raise StackFileError(f"{where}: missing `{key}`")
        return None
    value = entry[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise StackFileError(f"{where}: `{key}` must be a {kind.__name__}, got {value!r}")
    return value


def _strings(
    entry: dict[str, Any], key: str, where: str, required: bool = False
) -> tuple[str, ...]:
    values = _field(entry, key, list, where, required) or []
    if not all(isinstance(value, str) for value in values):
        raise StackFileError(f"{where}: `{key}` must be a list of strings")
    return tuple(values)


def _process(entry: Any, index: int) -> Process:
    where = f"processes[{index}]"
    if not isinstance(entry, dict):
        raise StackFileError(f"{where}: must be a mapping")
    name = _field(entry, "name", str, where)
    where = f"processes[{index}] ({name})"
    cmd = _strings(entry, "cmd", where, required=True)
    if not cmd:
        raise StackFileError(f"{where}: `cmd` must not be empty")
    port = _field(entry, "port", int, where)
    if not 1 <= port <= 65535:
        raise StackFileError(f"{where}: `port` must be from 1 to 65535, got {port}")
    ready_path = _field(entry, "ready_path", str, where, required=False)
    if ready_path is not None and not ready_path.startswith("/"):
        raise StackFileError(f"{where}: `ready_path` must start with '/', got {ready_path!r}")
    env = _field(entry, "env", dict, where, required=False) or {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise StackFileError(f"{where}: `env` values must be strings (quote numbers)")
    return Process(
        name=name,
        cmd=cmd,
        port=port,
        build=_strings(entry, "build", where),
        ready_path=ready_path,
        env=env,
        labels=_strings(entry, "labels", where),
        deps=_strings(entry, "deps", where),
    )


def load_stack(path: Path) -> list[Process]:
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise StackFileError(f"{path}: {error}") from error
    if not isinstance(document, dict) or not isinstance(document.get("processes"), list):
        raise StackFileError(f"{path}: expected a top-level `processes:` list")
    processes = [_process(entry, index) for index, entry in enumerate(document["processes"])]
    for attribute in ("name", "port"):
        seen: set[object] = set()
        for process in processes:
            value = getattr(process, attribute)
            if value in seen:
                raise StackFileError(f"{path}: two processes share the {attribute} {value!r}")
            seen.add(value)
    return processes
