#!/usr/bin/env bash
# `make test-images`: checks every service image Pants built last (make docker first).
#
#   tools/images/test.sh [--no-tilt-push] [--no-repro] [PACKAGE...]   default: every services/<package>
#
# Points the docker CLI at the engine, exports this tree's build metadata (what a
# deployment injects and /version must show), then runs the checks:
# tools/images/imagecheck.py (--help lists them).
set -euo pipefail
# shellcheck source=tools/images/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ "${1:-}" != -h && "${1:-}" != --help ]]; then
  use_engine
  use_build_metadata
fi
cd "${repo_root}"
exec python3 -m tools.images.imagecheck "$@"
