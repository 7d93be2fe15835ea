"""Running the host's tools for the base root filesystem build, and writing its files."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path


class RootfsError(Exception):
    """A failure the user can act on; rootfs.py prints it without a traceback."""


def run(cmd: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run a local tool with arguments built here (never from untrusted input)."""
    # Looked up on the caller's PATH: `env` is the child's environment, not ours.
    program = shutil.which(cmd[0])
    if program is None:
        raise RootfsError(f"{cmd[0]} is not installed; it is needed for this step")
    try:
        result = subprocess.run(
            [program, *cmd[1:]], check=True, capture_output=True, text=True, cwd=cwd, env=env
        )
    except subprocess.CalledProcessError as exc:
        output = (exc.stderr or exc.stdout or "").strip()
        raise RootfsError(
            f"`{' '.join(cmd[:3])} ...` failed ({exc.returncode}):\n{output}"
        ) from exc
    return result.stdout


def sha256_of(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write next to the destination and rename, so readers never see half a file."""
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
