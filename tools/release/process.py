"""Running the external programs (git, kubectl, gh, pants) the release logic drives."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from tools.release.errors import ReleaseError


def run(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    timeout: float | None = None,
    input_text: str | None = None,
) -> str:
    """stdout of argv; a failure raises ReleaseError with the command and its stderr."""
    try:
        result = subprocess.run(
            list(argv),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input_text,
            check=False,
        )
    except FileNotFoundError:
        raise ReleaseError(f"{argv[0]} is not installed (needed for: {' '.join(argv)})") from None
    except subprocess.TimeoutExpired:
        raise ReleaseError(f"{' '.join(argv)} did not finish within {timeout:.0f} s") from None
    if result.returncode != 0:
        raise ReleaseError(
            f"{' '.join(argv)} failed (exit {result.returncode}): "
            f"{result.stderr.strip() or result.stdout.strip()}"
        )
    return result.stdout
