"""Byte-compile the third-party packages of the virtualenv this runs in.

    PEX_EXTRA_SYS_PATH=libs python3 dist/deployments.local/stack.pex -m meridian_devstack.warm

`make build` runs it once the stack's PEX is built, on one CPU while Pants generates the
API's code on the other: the PEX makes its virtualenv on this first run, and the stack's
processes, started together, then import compiled packages instead of each compiling the
same ones (about 0.7 s of CPU each on a fresh machine).
"""

from __future__ import annotations

import compileall
import os
import site
import sys
from pathlib import Path


def installed_packages() -> list[Path]:
    """Each package directory of site-packages, resolved: a PEX virtualenv links them
    from the PEX's installed wheels, and compileall does not follow links."""
    packages = []
    for directory in site.getsitepackages():
        for entry in os.scandir(directory):
            if entry.is_dir() and not entry.name.endswith((".dist-info", "__pycache__")):
                packages.append(Path(entry.path).resolve())
    return sorted(packages)


def main() -> int:
    compiled = all(compileall.compile_dir(package, quiet=1) for package in installed_packages())
    return 0 if compiled else 1


if __name__ == "__main__":
    sys.exit(main())
