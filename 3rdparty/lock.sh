#!/usr/bin/env bash
# Re-resolves the hash-pinned tool locks with uv (make tool-locks):
#   pants/uv.in           -> pants/uv.txt           uv itself (./pants installs it with pip)
#   pants/requirements.in -> pants/requirements.txt Pants' bootstrap (+ pants/overrides.txt)
#   tools/pre-commit.in   -> tools/pre-commit.txt   the git hook runner
#   tools/audit.in        -> tools/audit.txt        pip-audit for .github/workflows/audit.yml
#   ../bench/cache_demo/server/requirements.in -> requirements.txt  BuildGrid for make ci-cache-demo
#   tools/gitleaks.in     -> tools/gitleaks.txt     gitleaks for `make secrets` (ci.yml's secrets job)
#   tools/ci-rehearsal.in -> tools/ci-rehearsal.txt act for `make ci-rehearsal`
# The services' own resolve is Pants': make lock.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT

# The proxy CA (PIP_CERT) where there is one; uv brings its own roots otherwise.
if [[ -n "${PIP_CERT:-}" ]]; then
  export SSL_CERT_FILE="${PIP_CERT}"
fi

python3 -m venv "${work}/venv"
PIP_CONFIG_FILE=/dev/null "${work}/venv/bin/pip" install --quiet --disable-pip-version-check \
  --require-hashes --no-deps -r "${here}/pants/uv.txt"

# A cooldown: MERIDIAN_LOCK_EXCLUDE_NEWER (an RFC 3339 time, e.g. 2026-11-30T00:00:00Z)
# leaves out releases uploaded after it (the weekly relock sets it a week back).
cooldown=()
if [[ -n "${MERIDIAN_LOCK_EXCLUDE_NEWER:-}" ]]; then
  cooldown=(--exclude-newer "${MERIDIAN_LOCK_EXCLUDE_NEWER}")
fi

compile() {  # compile DIR INPUT OUTPUT [uv pip compile options...]
  local dir="$1" input="$2" output="$3"
  shift 3
  # --upgrade: without it uv keeps the versions already in the output file.
  (cd "${here}/${dir}" && "${work}/venv/bin/uv" pip compile --quiet --no-config --generate-hashes --upgrade \
    --index-url "${MERIDIAN_INDEX_URL:-https://pypi.org/simple}" "${cooldown[@]}" \
    --custom-compile-command "make tool-locks" "$@" --output-file "${output}" "${input}")
}

compile pants uv.in uv.txt
# Pants 2.17.1 runs on CPython 3.9. ujson is optional for python-lsp-jsonrpc (it falls
# back to json) and its fixed releases need Python 3.10, so it is left out; ./pants
# installs with --no-deps.
compile pants requirements.in requirements.txt --python-version 3.9 \
  --override overrides.txt --no-emit-package ujson
compile tools pre-commit.in pre-commit.txt --python-version 3.11
compile tools audit.in audit.txt --python-version 3.11
compile ../bench/cache_demo/server requirements.in requirements.txt --python-version 3.11
compile tools gitleaks.in gitleaks.txt --python-version 3.11
compile tools ci-rehearsal.in ci-rehearsal.txt --python-version 3.11
