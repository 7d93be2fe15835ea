# shellcheck shell=bash
# Shared by the tools/images scripts (sourced, not run).

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
readonly repo_root

# The comment block at the top of the running script.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

say() { printf '%s: %s\n' "$(basename "$0" .sh)" "$*" >&2; }
die() {
  say "$*"
  exit 1
}

# Points the docker CLI at a Docker daemon, or at Podman (started if needed); `docker`
# is then tools/images/bin/docker, which runs the CLI engine.sh chose.
use_engine() {
  local settings
  settings="$("${repo_root}/tools/images/engine.sh" env)" || exit 1
  eval "${settings}"
  case ":${PATH}:" in
    *":${repo_root}/tools/images/bin:"*) ;;
    *) export PATH="${repo_root}/tools/images/bin:${PATH}" ;;
  esac
}

# Build metadata of the tree as it is (tools/image-tags.sh --env), exported for Pants.
use_build_metadata() {
  local settings
  settings="$("${repo_root}/tools/image-tags.sh" --env)" || exit 1
  set -a
  eval "${settings}"
  set +a
}

# Every service in the catalog (services/catalog.json, written by `make services`), a
# line each: its package, name and image.
catalog_services() {
  python3 -c 'import json, sys
for service in json.load(open(sys.argv[1]))["services"]:
    print(service["package"], service["name"], service["image"])' "${repo_root}/services/catalog.json"
}

built_image_id() { # built_image_id DIST-DIR TARGET-NAME
  local info="${repo_root}/dist/$1/$2.docker-info.json"
  [[ -f "${info}" ]] || die "no ${info#"${repo_root}"/}: build the images first (make docker)"
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["image_id"].removeprefix("sha256:"))' "${info}"
}
image_id() { built_image_id "services.$1" image; } # image_id PACKAGE
base_image_id() { built_image_id deployments.docker.base base; }

# sha256 of stdin, hex (sha256sum on Linux, shasum on macOS).
sha256() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum; else shasum -a 256; fi
}

megabytes() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1e6 }'; }

# How often the Podman service has restarted (see engine.sh); 0 with a Docker daemon.
engine_restarts() {
  [[ -f "${MERIDIAN_ENGINE_LOG:-}" ]] || {
    echo 0
    return
  }
  grep -c '^meridian: podman system service exited' "${MERIDIAN_ENGINE_LOG}" || true
}

# ./pants package, run once more when the Podman service died and restarted meanwhile:
# a safety net behind tools/images/bin/docker for Podman 4.3's builder panic.
pants_package() {
  local restarts
  restarts="$(engine_restarts)"
  if "${repo_root}/pants" package "$@"; then
    return 0
  fi
  (($(engine_restarts) > restarts)) || return 1
  say "the Podman service restarted during the build; building again"
  use_engine
  "${repo_root}/pants" package "$@"
}
