#!/usr/bin/env bash
# Applies the repository settings kept as code to a GitHub repository: the rulesets in
# .github/rulesets/ and the deployment environments in .github/environments/
# (tools/release/settings.py). Needs `gh` logged in as a repository admin.
#
#   .github/apply-settings.sh OWNER/REPO
set -euo pipefail

repo="${1:-}"
[[ "${repo}" =~ ^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$ ]] ||
  { echo "usage: $0 OWNER/REPO (the GitHub repository to configure)" >&2; exit 2; }
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python="$(command -v python3.11 || command -v python3)" ||
  { echo "apply-settings: needs Python 3.11 or newer" >&2; exit 1; }
exec "${python}" -m tools.release apply-settings --repository "${repo}"
