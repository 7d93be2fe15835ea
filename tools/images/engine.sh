#!/usr/bin/env bash
# Finds or starts a container engine and prints the environment for it:
#   eval "$(tools/images/engine.sh env)"   |   tools/images/engine.sh status | stop
# The logic and its settings: tools/images/engine.py (--help).
set -euo pipefail
python="$(command -v python3.11 || command -v python3)" ||
  { echo "engine: needs Python 3.9 or newer (python3 on PATH)" >&2; exit 1; }
exec "${python}" "$(dirname "${BASH_SOURCE[0]}")/engine.py" "$@"
