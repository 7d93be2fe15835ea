# shellcheck shell=bash
# Shared by the tools/images scripts (sourced, not run).

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
readonly repo_root
# Every service image must stay under this (uncompressed, as `docker images` shows).
# shellcheck disable=SC2034 # used by the scripts that source this file
readonly image_budget_bytes=50000000

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

# services/<package> directories: every one with a BUILD file is a service.
service_packages() {
  local build
  for build in "${repo_root}"/services/*/BUILD; do
    [[ -f "${build}" ]] && basename "$(dirname "${build}")"
  done
}

# The id of the image Pants built last for a target, from the docker-info file it writes.
built_image_id() { # built_image_id DIST-DIR TARGET-NAME
  local info="${repo_root}/dist/$1/$2.docker-info.json"
  [[ -f "${info}" ]] || die "no ${info#"${repo_root}"/}: build the images first (make docker)"
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["image_id"].removeprefix("sha256:"))' "${info}"
}
image_id() { built_image_id "services.$1" image; } # image_id PACKAGE
base_image_id() { built_image_id deployments.docker.base base; }

# How test.sh and bench.sh run a service image: as Kubernetes does (read-only root,
# tmpfs /tmp, no capabilities, no privilege escalation), its backing services
# configured with well-formed addresses of ports nothing listens on, and its HTTP port
# on a free loopback port: 8080 published there, or, on an engine without container
# networking (MERIDIAN_CONTAINER_NETWORK=host), the service listening there itself.
# Sets the array run_service_args; call it once per container.
service_run_args() {
  run_service_args=(
    --read-only --tmpfs "/tmp:rw,size=16m" --cap-drop ALL --security-opt no-new-privileges
    -e "DATABASE_URL=postgresql://meridian@127.0.0.1:1/meridian"
    -e "REDIS_URL=redis://127.0.0.1:1/0"
    -e "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:1"
  )
  if [[ "${MERIDIAN_CONTAINER_NETWORK:-}" == host ]]; then
    run_service_args+=(--network host -e HOST=127.0.0.1 -e "PORT=$(free_port)")
  else
    run_service_args+=(-p "127.0.0.1::8080")
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The loopback port a container's service answers on.
host_port() {
  if [[ "${MERIDIAN_CONTAINER_NETWORK:-}" == host ]]; then
    docker inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$1" | sed -n 's/^PORT=//p'
  else
    docker port "$1" 8080/tcp | sed -n 's/.*:\([0-9]*\)$/\1/p' | sed -n 1p
  fi
}

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
