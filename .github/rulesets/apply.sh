#!/usr/bin/env bash
# Applies the repository rulesets in this directory (*.json) to a GitHub repository:
# updates the ruleset of the same name, or creates it. Needs `gh` logged in as a
# repository admin.
#
#   .github/rulesets/apply.sh OWNER/REPO
set -euo pipefail

repo="${1:-}"
[[ "${repo}" =~ ^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$ ]] ||
  { echo "usage: $0 OWNER/REPO (the GitHub repository to configure)" >&2; exit 2; }
cd "$(dirname "${BASH_SOURCE[0]}")"
for file in *.json; do
  jq -e '.name and .target and .rules' "${file}" >/dev/null ||
    { echo "${file}: not a ruleset (needs name, target, rules)" >&2; exit 1; }
done

existing="$(gh api --paginate "repos/${repo}/rulesets")"
for file in *.json; do
  name="$(jq -r .name "${file}")"
  id="$(jq -r --arg name "${name}" '.[] | select(.name == $name) | .id' <<<"${existing}")"
  if [[ -n "${id}" ]]; then
    gh api --method PUT "repos/${repo}/rulesets/${id}" --input "${file}" >/dev/null
    echo "updated ruleset '${name}' (${id}) from ${file}"
  else
    gh api --method POST "repos/${repo}/rulesets" --input "${file}" >/dev/null
    echo "created ruleset '${name}' from ${file}"
  fi
done
