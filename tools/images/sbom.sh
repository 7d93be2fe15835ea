#!/usr/bin/env bash
# An SPDX JSON SBOM of each built image, into dist/sbom/<image>.spdx.json: Debian
# packages (from /var/lib/dpkg/status.d) and Python distributions (from the venv's
# dist-info), made offline by syft from `docker save` archives.
#
#   tools/images/sbom.sh     the base image and every service image Pants built last
set -euo pipefail
# shellcheck source=tools/images/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bin="$("${repo_root}/tools/images/tools.sh")"
use_engine
out="${repo_root}/dist/sbom"
mkdir -p "${out}"
scratch="$(mktemp -d)"
trap 'rm -rf "${scratch}"' EXIT

sbom() { # sbom NAME REPOSITORY IMAGE-ID
  local name="$1" packages
  docker save "$3" -o "${scratch}/${name}.tar"
  # No update check: the build must not depend on anything but the package index.
  SYFT_CHECK_FOR_APP_UPDATE=false "${bin}/syft" --quiet "docker-archive:${scratch}/${name}.tar" \
    --source-name "$2" -o "spdx-json=${out}/${name}.spdx.json"
  rm -f "${scratch}/${name}.tar"
  packages="$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["packages"]))' "${out}/${name}.spdx.json")"
  say "${out#"${repo_root}"/}/${name}.spdx.json: ${packages} packages"
}

sbom base meridian/base "$(base_image_id)"
while read -r package name image; do
  sbom "${name}" "${image}" "$(image_id "${package}")"
done < <(catalog_services)
