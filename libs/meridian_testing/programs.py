"""Run a first-party module as a program, as make, CI or a user starts it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping


def run_module(
    module: str, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python3 -m MODULE ARGS...` on this interpreter; env adds to this process's."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )


def check_command_line(module: str, described_as: str) -> None:
    """The module starts as a program: --help describes it, an unknown option is refused."""
    shown = run_module(module, "--help")
    assert shown.returncode == 0, f"{module} --help exited {shown.returncode}: {shown.stderr}"
    assert described_as in shown.stdout, f"{module} --help: {shown.stdout}"
    refused = run_module(module, "--no-such-option")
    assert refused.returncode == 2, f"{module} took an unknown option: {refused.stdout}"
    assert "unrecognized arguments: --no-such-option" in refused.stderr, refused.stderr
