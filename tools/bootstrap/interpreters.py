"""Where Meridian looks for the CPythons it needs: 3.9 runs Pants, 3.11 runs the services.

    python3 -m tools.bootstrap.interpreters 3.9     (from the repository root)

prints the interpreter (its `sys.executable`, not a shim in front of it) or says where
it looked and how to install one, exit 1. `./pants`, `tools/prerequisites.sh` and the
bootstrap all ask this module, so a Python one of them finds, the others find too.

The places, in order:
1. the variable that names it: `PANTS_PYTHON` (3.9), `MERIDIAN_PYTHON` (3.11);
2. `python3.X` on PATH;
3. pyenv's versions (`$PYENV_ROOT`, `~/.pyenv`);
4. the GitHub Actions tool cache (`$RUNNER_TOOL_CACHE`, else `$AGENT_TOOLSDIRECTORY`,
   else `/opt/hostedtoolcache`): where `actions/setup-python` installs, also with
   `update-environment: false`, which leaves PATH alone;
5. the system's usual places.

Standard library only, and Python 3.9: it runs before Pants exists.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_TOOL_CACHE = "/opt/hostedtoolcache"


class PythonNotFoundError(Exception):
    pass


@dataclass(frozen=True)
class Wanted:
    """One CPython minor version, the variable that names it and what it is for."""

    minor: int
    variable: str
    purpose: str
    # Modules the interpreter must have (Debian splits venv into its own package).
    modules: tuple[str, ...] = ()

    @property
    def version(self) -> str:
        return f"3.{self.minor}"

    @property
    def executable(self) -> str:
        return f"python3.{self.minor}"


PANTS = Wanted(9, "PANTS_PYTHON", "runs Pants 2.17", ("venv",))
SERVICES = Wanted(11, "MERIDIAN_PYTHON", "the services' runtime", ("venv",))
KNOWN = {wanted.version: wanted for wanted in (PANTS, SERVICES)}


def _version_key(path: Path, prefix: str) -> tuple[int, ...]:
    """Sorts `3.9.18` above `3.9.2` (newest patch release first)."""
    for part in path.parts:
        if part.startswith(prefix):
            return tuple(int(number) for number in re.findall(r"\d+", part))
    return ()


def _newest_first(paths: Sequence[Path], prefix: str) -> list[str]:
    return [
        str(path) for path in sorted(paths, key=lambda p: _version_key(p, prefix), reverse=True)
    ]


def tool_cache(env: Mapping[str, str]) -> str:
    """The runner sets RUNNER_TOOL_CACHE for its steps; `sudo` clears it, which leaves
    GitHub-hosted runners' fixed place."""
    return env.get("RUNNER_TOOL_CACHE") or env.get("AGENT_TOOLSDIRECTORY") or DEFAULT_TOOL_CACHE


def candidates(wanted: Wanted, env: Mapping[str, str]) -> list[str]:
    """Every place worth asking, in the order of the module's docstring."""
    found = [
        env.get(wanted.variable, ""),
        shutil.which(wanted.executable, path=env.get("PATH", "")),
    ]
    home = Path(env.get("HOME") or "/nonexistent")
    for root in (env.get("PYENV_ROOT", ""), str(home / ".pyenv")):
        if root:
            pattern = f"versions/{wanted.version}*/bin/{wanted.executable}"
            found += _newest_first(list(Path(root).glob(pattern)), wanted.version)
    # setup-python's layout: <cache>/Python/<version>/<arch>/bin/python3.X
    pattern = f"Python/{wanted.version}.*/*/bin/{wanted.executable}"
    found += _newest_first(list(Path(tool_cache(env)).glob(pattern)), wanted.version)
    found += [
        f"{directory}/{wanted.executable}"
        for directory in ("/usr/bin", "/usr/local/bin", "/opt/homebrew/bin")
    ]
    return list(dict.fromkeys(candidate for candidate in found if candidate))


def probe(wanted: Wanted, candidate: str) -> str | None:
    """The interpreter's own `sys.executable` if `candidate` runs the wanted version
    with the modules it needs; a pyenv shim for a version not selected does not."""
    if not os.access(candidate, os.X_OK):
        return None
    imports = "".join(f"import {module}; " for module in wanted.modules)
    code = (
        f"{imports}import sys; "
        f"assert sys.version_info[:2] == (3, {wanted.minor}); print(sys.executable)"
    )
    try:
        result = subprocess.run(
            [candidate, "-c", code], capture_output=True, text=True, check=False, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    executable = result.stdout.strip()
    return executable if result.returncode == 0 and executable else None


def not_found_message(wanted: Wanted) -> str:
    return (
        f"Meridian needs CPython {wanted.version} ({wanted.purpose}) and none was found "
        f"(looked at ${wanted.variable}, {wanted.executable} on PATH, pyenv, the GitHub "
        f"Actions tool cache).\nInstall one, then try again:\n"
        f"  pyenv:   pyenv install {wanted.version}\n"
        f"  Debian:  apt-get install {wanted.executable} {wanted.executable}-venv "
        "(where the release packages it)\n"
        f"  macOS:   brew install python@{wanted.version}\n"
        f"or point {wanted.variable} at a {wanted.executable} binary."
    )


def find(wanted: Wanted, env: Mapping[str, str]) -> str:
    for candidate in candidates(wanted, env):
        executable = probe(wanted, candidate)
        if executable is not None:
            return executable
    raise PythonNotFoundError(not_found_message(wanted))


def main(argv: Sequence[str], env: Mapping[str, str]) -> int:
    if len(argv) != 1 or argv[0] not in KNOWN:
        print(
            f"usage: python3 -m tools.bootstrap.interpreters {{{','.join(KNOWN)}}}",
            file=sys.stderr,
        )
        return 2
    try:
        print(find(KNOWN[argv[0]], env))
    except PythonNotFoundError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ))
