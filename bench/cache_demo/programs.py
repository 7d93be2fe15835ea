"""The programs the demo runs, found on PATH once, with a clear error if missing."""

import shutil

from bench.cache_demo.errors import DemoError


def executable(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise DemoError(f"`{name}` is not on PATH; the demo needs it (tools/prerequisites.sh)")
    return found
