#!/usr/bin/env bash
# Checks (and on Debian/Ubuntu as root, installs) what Meridian needs from the host:
# tools/prerequisites/host.py says what and where it looks.
#
# Usage: tools/prerequisites.sh [--check]   (--check only reports, exit 1 if missing)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Any CPython 3.9+ runs the check: the one on PATH, else the system's.
for python in python3 /usr/bin/python3 /usr/local/bin/python3; do
  if command -v "${python}" >/dev/null 2>&1; then
    cd "${root}"
    exec "${python}" -m tools.prerequisites "$@"
  fi
done
echo "tools/prerequisites.sh: Meridian needs python3 (3.9 or newer) to check the rest;" \
  "install it (apt-get install python3 / brew install python) and run this again" >&2
exit 1
