"""Running the external programs (git, kubectl, gh, pants) the release logic drives.

Every child dies with this process, even when it is killed outright (SIGKILL, which a
runner sends to a cancelled step): on Linux the kernel sends the child SIGKILL when its
parent exits (PR_SET_PDEATHSIG), so no `kubectl apply` or rollout wait of a dead deploy
keeps acting on the cluster while something else rolls it back. File descriptors handed
to `children_hold` stay open in every child started meanwhile: a lock held on one is
released only once this process and all of them are gone.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tools.release.errors import ReleaseError

_PR_SET_PDEATHSIG = 1
_held: list[int] = []


def _die_with(parent: int) -> Callable[[], None]:
    """Runs in the child between fork and exec."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None

    def arrange() -> None:
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the line above took effect
            os._exit(1)

    return arrange


def popen(argv: Sequence[str]) -> subprocess.Popen[str]:
    """A child that dies with this process and holds the descriptors of `children_hold`;
    its stdout and stderr together in one text pipe."""
    return subprocess.Popen(
        list(argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_die_with(os.getpid()),  # noqa: PLW1509 (the tool runs no threads)
        pass_fds=tuple(_held),
    )


@contextmanager
def children_hold(descriptor: int) -> Iterator[None]:
    """Children started inside the block inherit `descriptor` (e.g. a locked file)."""
    _held.append(descriptor)
    try:
        yield
    finally:
        _held.remove(descriptor)


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
            preexec_fn=_die_with(os.getpid()),
            pass_fds=tuple(_held),
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
