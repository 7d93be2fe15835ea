"""The lock that keeps a deploy and a rollback of the same state file from acting at once.

The deploy holds it from before it records anything until it has deployed or rolled
back; every child it starts (kubectl) holds it too, so `rollback --state` in a later
step waits until the deploy and all of its children are gone, however they ended
(a cancelled runner signals the step's process, then kills it).
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tools.release.errors import ReleaseError
from tools.release.process import children_hold


def path_of(state_file: Path) -> Path:
    return state_file.with_name(state_file.name + ".lock")


@contextmanager
def held(state_file: Path, seconds: float, who: str) -> Iterator[None]:
    """Holds the state file's lock inside the block, waiting up to `seconds` for it."""
    path = path_of(state_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        until = time.monotonic() + seconds
        waited = False
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited:
                    print(
                        f"{who}: waiting for {path}: a deploy (or its kubectl calls) still runs",
                        file=sys.stderr,
                        flush=True,
                    )
                    waited = True
                if time.monotonic() >= until:
                    raise ReleaseError(
                        f"{path} is still locked after {seconds:.0f} s: another deploy or "
                        "rollback of this state file is running"
                    ) from None
                time.sleep(0.2)
        if waited:
            print(f"{who}: {path} is free", file=sys.stderr, flush=True)
        with children_hold(descriptor):
            yield
    finally:
        os.close(descriptor)
