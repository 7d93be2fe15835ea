#!/usr/bin/env bash
# Tilt custom_build command (see Tiltfile, skips_local_docker=True): builds
# services/<pkg>'s dev image with Pants, tags it $EXPECTED_REF and puts it where the
# cluster pulls from, once:
#   - the registry Tilt found ($EXPECTED_REGISTRY, from the cluster's
#     local-registry-hosting ConfigMap): one push of $EXPECTED_REF. Podman is told that
#     a loopback registry speaks plain HTTP, as a Docker daemon assumes by itself.
#   - no registry: loaded into the cluster by its own tool (kind, k3d, minikube), or
#     nothing for clusters that run on the engine's own image store (Docker Desktop,
#     OrbStack, Rancher Desktop).
#
#   tools/images/tilt-build.sh services/<pkg>
#
# Environment: EXPECTED_REF (set by Tilt), EXPECTED_REGISTRY (set by Tilt when the
# cluster has a registry), MERIDIAN_KUBE_CONTEXT (the Tiltfile's kube context).
set -euo pipefail
# shellcheck source=tools/images/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

target="${1:?usage: tools/images/tilt-build.sh services/<pkg>}"
[[ -n "${EXPECTED_REF:-}" ]] || die "EXPECTED_REF is unset: Tilt's custom_build sets it to the image name to build"
[[ -f "${repo_root}/${target}/BUILD" ]] || die "${target}/BUILD not found: expected services/<pkg>"
image="$(catalog_services | awk -v pkg="$(basename "${target}")" '$1 == pkg { print $3 }')"
[[ -n "${image}" ]] || die "${target} is not in services/catalog.json: run make services"
cd "${repo_root}"

use_engine
tools/images/build.sh --no-lint --no-sbom "${target}:dev-image"
docker tag "${image}:dev" "${EXPECTED_REF}"

# localhost:5000, 127.0.0.1:5000, kind-registry.localhost:5000: plain HTTP.
is_loopback() { [[ "${1%%/*}" =~ ^(localhost|127\.[0-9.]+|\[::1\]|[^/]*\.localhost)(:[0-9]+)?$ ]]; }

push() {
  if [[ "${MERIDIAN_ENGINE}" == podman ]] && is_loopback "${EXPECTED_REF}"; then
    # Podman's API verifies TLS for every registry the service's registries.conf does
    # not mark insecure; its CLI, on the same image store, takes the decision per push.
    podman push --quiet --tls-verify=false "${EXPECTED_REF}"
  else
    docker push --quiet "${EXPECTED_REF}" >/dev/null
  fi
  say "pushed ${EXPECTED_REF}"
}

load_into_cluster() {
  local context="${MERIDIAN_KUBE_CONTEXT:-}" archive
  case "${context}" in
    docker-desktop | orbstack | rancher-desktop)
      [[ "${MERIDIAN_ENGINE}" == docker ]] && return
      die "${context} runs on its Docker daemon's images, but this build used ${MERIDIAN_ENGINE}: set MERIDIAN_ENGINE=docker"
      ;;
    kind-* | k3d-* | minikube) ;;
    *) die "kube context '${context}' has no registry Tilt can push to (no local-registry-hosting ConfigMap in kube-public) and is not kind, k3d or minikube" ;;
  esac
  archive="$(mktemp -d)/image.tar"
  trap 'rm -rf "$(dirname "${archive}")"' RETURN
  docker save --output "${archive}" "${EXPECTED_REF}"
  case "${context}" in
    kind-*) kind load image-archive --name "${context#kind-}" "${archive}" ;;
    k3d-*) k3d image import --cluster "${context#k3d-}" "${archive}" ;;
    minikube) minikube image load "${archive}" ;;
  esac
  say "loaded ${EXPECTED_REF} into ${context}"
}

if [[ -n "${EXPECTED_REGISTRY:-}" ]]; then
  push
else
  load_into_cluster
fi
