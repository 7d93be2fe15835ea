#!/usr/bin/env bash
# `make lint`: shellcheck (pinned in tools/images/requirements.txt) on every shell script
# git tracks: *.sh files and files whose #! line runs bash or sh.
#
#   tools/images/shellcheck.sh
set -euo pipefail
# shellcheck source=tools/images/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "${repo_root}"

bin="$("${repo_root}/tools/images/tools.sh")"
shellcheck="${bin}/shellcheck"
[[ -x "${shellcheck}" ]] || shellcheck="$(command -v shellcheck)" ||
  die "no shellcheck for this platform: install it (apt-get install shellcheck, brew install shellcheck)"

scripts=()
while IFS= read -r -d '' path; do
  [[ -f "${path}" ]] || continue
  if [[ "${path}" == *.sh ]] || head -n1 "${path}" | grep -Eq '^#!.*[/ ](ba)?sh( |$)'; then
    scripts+=("${path}")
  fi
done < <(git ls-files -z)
((${#scripts[@]})) || die "no shell scripts found: run from a git checkout"
"${shellcheck}" --external-sources "${scripts[@]}"
say "${#scripts[@]} shell scripts pass shellcheck"
