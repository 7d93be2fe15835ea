#!/usr/bin/env bash
# `make bench-images`: sizes, rebuild time, layer reuse, commit independence,
# reproducibility and start-up time of the service images (make docker first).
#
#   bench/images/bench.sh [--service PACKAGE] [--runs N] [--skip-independent]
#
# Points the docker CLI at the engine and exports this tree's build metadata, then
# runs bench/images/bench.py (--help says what each part measures).
set -euo pipefail
# shellcheck source=tools/images/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../tools/images/lib.sh"

if [[ "${1:-}" != -h && "${1:-}" != --help ]]; then
  use_engine
  use_build_metadata
fi
cd "${repo_root}"
exec python3 -m bench.images.bench "$@"
