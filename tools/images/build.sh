#!/usr/bin/env bash
# `make docker`: builds every container image with Pants: the runtime base
# (deployments/docker/base:base) and one per service (services/<pkg>:image).
#
#   tools/images/build.sh [--no-lint] [--no-sbom] [TARGET...]   (default: all docker_image targets)
#
#   1. points the docker CLI at an engine: a Docker daemon, else Podman (engine.sh)
#   2. exports this tree's build metadata for Pants (tools/image-tags.sh --env)
#   3. builds the base root filesystem tarball if its inputs changed (rootfs.py)
#   4. lints the Dockerfiles (lint.sh: hadolint, trivy config)
#   5. ./pants package of the docker_image targets
#   6. writes an SPDX SBOM per image into dist/sbom/ (sbom.sh)
set -euo pipefail
# shellcheck source=tools/images/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

lint=true
sbom=true
targets=()
for argument in "$@"; do
  case "${argument}" in
    --no-lint) lint=false ;;
    --no-sbom) sbom=false ;;
    -h | --help)
      usage
      exit 0
      ;;
    -*) die "unknown option ${argument} (try --help)" ;;
    *) targets+=("${argument}") ;;
  esac
done
cd "${repo_root}"

# The base image ADDs a tarball that Pants cannot build itself (see
# generated/base-rootfs/BUILD). Rebuilt only when what makes it changes (its lock and
# the modules rootfs.py is made of): the stamp in dist/ holds the digest of those
# inputs. rootfs.py writes it whole or not at all.
ensure_rootfs() {
  local base=deployments/docker/base rootfs=generated/base-rootfs/rootfs.tar
  local stamp=dist/images/rootfs.inputs inputs
  inputs="$(cat "${base}"/*.py deployments/docker/{elf,reprotar}.py "${base}/packages.txt" \
    "${base}/packages.lock" | sha256 | cut -d' ' -f1)"
  if [[ -f "${rootfs}" && "$(cat "${stamp}" 2>/dev/null)" == "${inputs}" ]]; then
    return
  fi
  command -v python3.11 >/dev/null 2>&1 || die "python3.11 is needed to build the base root filesystem"
  say "building ${rootfs} (its inputs changed)"
  rm -f "${stamp}"
  python3.11 "${base}/rootfs.py" build --output "${rootfs}" >&2
  if [[ "$(id -u)" == 0 ]]; then
    python3.11 "${base}/rootfs.py" verify "${rootfs}" >&2
  else # the smoke test runs under chroot, which needs root
    python3.11 "${base}/rootfs.py" verify --no-run "${rootfs}" >&2
  fi
  mkdir -p "$(dirname "${stamp}")"
  printf '%s\n' "${inputs}" >"${stamp}"
}

use_engine
use_build_metadata
ensure_rootfs
${lint} && "${repo_root}/tools/images/lint.sh"

all_images=false
if [[ ${#targets[@]} -eq 0 ]]; then
  all_images=true
  read -r -a targets <<<"$(./pants --filter-target-type=docker_image list :: | tr '\n' ' ')"
fi
say "building ${targets[*]} at ${MERIDIAN_BUILD_REVISION} (version ${MERIDIAN_BUILD_VERSION})"
started="${SECONDS}"
pants_package "${targets[@]}"
say "built in $((SECONDS - started)) s"

${sbom} && "${repo_root}/tools/images/sbom.sh"

# The table of every image after a full build; a build of chosen targets (Tilt's) only
# reports them, above.
if ${all_images}; then
  printf '\n%-34s %-14s %9s\n' "image" "id" "size MB"
  printf '%-34s %-14s %9s\n' "meridian/base" "$(base_image_id | cut -c1-12)" \
    "$(megabytes "$(docker image inspect --format '{{.Size}}' "$(base_image_id)")")"
  while read -r package _ image; do
    id="$(image_id "${package}")"
    printf '%-34s %-14s %9s\n' "${image}" "${id:0:12}" \
      "$(megabytes "$(docker image inspect --format '{{.Size}}' "${id}")")"
  done < <(catalog_services)
fi
say "check them with tools/images/test.sh (make test-images), which also enforces the size budget"
