#!/usr/bin/env bash
# Re-resolves the Pants bootstrap locks with uv: uv.in -> uv.txt, requirements.in
# (+ overrides.txt) -> requirements.txt, every file hash-pinned. Usage: make pants-lock
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
  --require-hashes --no-deps -r "${here}/uv.txt"

compile() {  # compile INPUT OUTPUT [uv pip compile options...]
  local input="$1" output="$2"
  shift 2
  (cd "${here}" && "${work}/venv/bin/uv" pip compile --quiet --no-config --generate-hashes \
    --index-url "${MERIDIAN_INDEX_URL:-https://pypi.org/simple}" \
    --custom-compile-command "make pants-lock" "$@" --output-file "${output}" "${input}")
}

compile uv.in uv.txt
# Pants 2.17.1 runs on CPython 3.9. ujson is optional for python-lsp-jsonrpc (it falls
# back to json) and its fixed releases need Python 3.10, so it is left out; ./pants
# installs with --no-deps.
compile requirements.in requirements.txt --python-version 3.9 \
  --override overrides.txt --no-emit-package ujson
