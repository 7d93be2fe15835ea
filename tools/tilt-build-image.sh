#!/usr/bin/env bash
# Tilt custom_build command (see Tiltfile): builds services/<pkg>'s dev image with Pants
# and tags it as $EXPECTED_REF, the name Tilt deploys.
#
#   tools/tilt-build-image.sh services/<pkg>
#
# Tilt then loads the image into the cluster (kind) or pushes it to the cluster's
# registry itself; we push too when Tilt names a registry, for builders whose images
# Tilt cannot see.
set -euo pipefail

target="${1:?usage: tools/tilt-build-image.sh services/<pkg>}"
: "${EXPECTED_REF:?EXPECTED_REF is unset: this script is run by Tilt custom_build}"
[ -f "$target/BUILD" ] || { echo "tilt-build-image: $target/BUILD not found" >&2; exit 1; }

pkg="$(basename "$target")"
# A Docker daemon when there is one, else Podman; then the base and this image.
eval "$(tools/images/engine.sh env)"
tools/images/build.sh --no-lint --no-sbom "$target:dev-image"
docker tag "meridian/${pkg//_/-}:dev" "$EXPECTED_REF"
if [ -n "${EXPECTED_REGISTRY:-}" ]; then
  docker push "$EXPECTED_REF"
fi
