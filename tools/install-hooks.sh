#!/usr/bin/env bash
# Installs pre-commit from its hash-pinned lock into a cached venv and wires the hooks
# in .pre-commit-config.yaml into this clone's .git/hooks.
set -euo pipefail
cd "$(dirname "$0")/.."

requirements=3rdparty/tools/pre-commit.txt
key="$(sha256sum "${requirements}" | cut -c1-16)"
venv="${XDG_CACHE_HOME:-${HOME}/.cache}/meridian/pre-commit-${key}"

if [[ ! -x "${venv}/bin/pre-commit" ]]; then
  python3 -m venv "${venv}"
  PIP_CONFIG_FILE=/dev/null "${venv}/bin/pip" install --quiet --disable-pip-version-check \
    --require-hashes --no-deps -r "${requirements}"
fi
"${venv}/bin/pre-commit" install --install-hooks
echo "pre-commit hooks installed (runner: ${venv}/bin/pre-commit)"
