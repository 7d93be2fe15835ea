#!/usr/bin/env bash
# Finds a container engine for Meridian's image builds and tests, starting one if needed,
# and prints the environment that points the docker CLI (and so Pants) at it.
#
#   eval "$(tools/images/engine.sh env)"   # a Docker daemon if one answers, else Podman
#   tools/images/engine.sh status           # which engine, where
#   tools/images/engine.sh stop             # stop the Podman service this script started
#
# Pants 2.17 drives the `docker` CLI, which needs a daemon. Without one, this script
# installs Podman with apt (as root on Debian/Ubuntu) and runs `podman system service`,
# Podman's Docker-compatible API, on a unix socket, configured by
# tools/containers/containers.conf. It prints DOCKER_HOST and DOCKER_BUILDKIT=0 (the
# API has no BuildKit), CONTAINERS_CONF and CONTAINERS_STORAGE_CONF for running
# `podman` itself against the same images, MERIDIAN_ENGINE_LOG (the service's log),
# and for tools/images/bin/docker, which Pants runs, MERIDIAN_ENGINE and
# MERIDIAN_DOCKER_CLI.
#
# Settings (environment):
#   MERIDIAN_PODMAN_STORAGE_DRIVER  auto (default) | overlay | vfs. auto uses overlay when
#                                   the kernel can mount it here, else vfs (slower: a full
#                                   copy per layer, but it works inside any container).
#   MERIDIAN_ENGINE                 auto (default) | docker | podman
set -euo pipefail
# shellcheck source=tools/images/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly containers_conf="${repo_root}/tools/containers/containers.conf"
if [[ "$(id -u)" == 0 ]]; then
  readonly state_dir="/run/meridian/podman"
  readonly storage_root="/var/lib/meridian/containers"
else
  readonly state_dir="${XDG_RUNTIME_DIR:-/tmp/meridian-$(id -u)}/meridian/podman"
  readonly storage_root="${XDG_DATA_HOME:-${HOME}/.local/share}/meridian/containers"
fi
readonly socket="${state_dir}/podman.sock"
readonly pid_file="${state_dir}/service.pid"
readonly log_file="${state_dir}/service.log"
readonly storage_conf="${state_dir}/storage.conf"

# True when the docker CLI reaches a server (with whatever DOCKER_HOST is set).
docker_answers() {
  local limit=()
  command -v docker >/dev/null 2>&1 || return 1
  command -v timeout >/dev/null 2>&1 && limit=(timeout 10) # not on macOS
  ${limit[@]+"${limit[@]}"} docker version --format '{{.Server.Version}}' >/dev/null 2>&1
}

# The restart loop this script started is alive (the service itself may be restarting).
ours_running() {
  [[ -f "${pid_file}" ]] && kill -0 "$(cat "${pid_file}")" 2>/dev/null
}

need_docker_cli() {
  command -v docker >/dev/null 2>&1 && return
  die "the docker CLI is missing. Pants drives images through it, whichever engine runs them.
Install it: apt-get install docker.io (Debian/Ubuntu), or Docker's docker-ce-cli package,
or Docker Desktop / OrbStack / Rancher Desktop on macOS."
}

install_podman() {
  command -v podman >/dev/null 2>&1 && command -v runc >/dev/null 2>&1 && return
  if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    die "no Docker daemon answers and Podman is not installed.
Either start Docker (Docker Engine, Docker Desktop, OrbStack, Rancher Desktop), or install
Podman (apt-get install podman runc; brew install podman && podman machine start) and
run this again."
  fi
  say "no Docker daemon: installing Podman with apt"
  apt-get update -qq >&2
  # runc: crun fails on hosts with hybrid cgroups; CNI plugins and iptables: port mapping.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    podman runc containernetworking-plugins iptables >&2
}

# overlay is much faster than vfs, but needs a kernel that can mount it on this
# filesystem (not the case inside many containers, whose root is overlayfs itself).
storage_driver() {
  local wanted="${MERIDIAN_PODMAN_STORAGE_DRIVER:-auto}" probe
  case "${wanted}" in
    overlay | vfs)
      echo "${wanted}"
      return
      ;;
    auto) ;;
    *) die "MERIDIAN_PODMAN_STORAGE_DRIVER must be auto, overlay or vfs, not '${wanted}'" ;;
  esac
  # Keep the driver of images already stored (Podman cannot switch in place).
  if [[ -d "${storage_root}/overlay/storage/overlay" ]]; then
    echo overlay
    return
  elif [[ -d "${storage_root}/vfs/storage/vfs" ]]; then
    echo vfs
    return
  fi
  if [[ "$(id -u)" != 0 ]]; then
    echo vfs
    return
  fi
  mkdir -p "${storage_root}"
  probe="$(mktemp -d "${storage_root}/.overlay-probe.XXXXXX")"
  mkdir "${probe}/lower" "${probe}/upper" "${probe}/work" "${probe}/merged"
  if mount -t overlay overlay \
    -o "lowerdir=${probe}/lower,upperdir=${probe}/upper,workdir=${probe}/work" \
    "${probe}/merged" 2>/dev/null; then
    umount "${probe}/merged"
    echo overlay
  else
    echo vfs
  fi
  rm -rf "${probe}"
}

write_storage_conf() {
  local driver="$1"
  mkdir -p "${state_dir}"
  # One store per driver: Podman refuses a store written by another driver.
  cat >"${storage_conf}.tmp" <<EOF
# Written by tools/images/engine.sh; rewritten whenever it starts the service.
[storage]
driver = "${driver}"
runroot = "${state_dir}/storage-${driver}"
graphroot = "${storage_root}/${driver}/storage"
EOF
  mv "${storage_conf}.tmp" "${storage_conf}"
}

# Until the Docker API answers on the socket (the restart loop may be between runs).
wait_for_api() {
  local waited=0
  until DOCKER_HOST="unix://${socket}" docker_answers; do
    if ! ours_running || ((waited >= 30)); then
      die "Podman's service did not come up; its log (${log_file}):
$(tail -20 "${log_file}" 2>/dev/null)"
    fi
    sleep 1
    waited=$((waited + 1))
  done
}

start_podman() {
  local driver
  install_podman
  export CONTAINERS_CONF="${containers_conf}" CONTAINERS_STORAGE_CONF="${storage_conf}"
  if ours_running; then
    wait_for_api
    return
  fi
  driver="$(storage_driver)"
  write_storage_conf "${driver}"
  rm -f "${socket}"
  say "starting Podman's Docker API on ${socket} (storage: ${driver}, log: ${log_file})"
  # setsid: the service outlives this script and the terminal it was started from.
  # The loop restarts it: Podman 4.3's builder can panic when two builds overlap and
  # one is cancelled (buildah "semaphore: released more than held", fixed in 4.4),
  # which Pants does when inputs change mid-build. That build fails; the next one
  # finds the service up again.
  # It runs from / : it outlives the checkout it was started from, and conmon fails
  # every container start once its working directory has been deleted.
  # shellcheck disable=SC2016 # expanded by the inner shell
  (cd / && exec setsid bash -c 'while true; do
      podman system service --time=0 "unix://$1" </dev/null
      echo "meridian: podman system service exited with $?; restarting" >&2
      sleep 1
    done' podman-service "${socket}" >"${log_file}" 2>&1 </dev/null) &
  echo "$!" >"${pid_file}"
  wait_for_api
}

print_env() {
  local name
  for name in "$@"; do
    printf 'export %s=%q\n' "${name}" "${!name}"
  done
}

cmd_env() {
  need_docker_cli
  local engine="${MERIDIAN_ENGINE:-auto}"
  # For tools/images/bin/docker, the docker Pants runs: the CLI it wraps.
  MERIDIAN_DOCKER_CLI="$(command -v docker)"
  export MERIDIAN_DOCKER_CLI
  if [[ "${engine}" != podman ]] && ! ours_running && docker_answers; then
    say "using the Docker daemon at ${DOCKER_HOST:-its default socket}"
    export MERIDIAN_ENGINE=docker
    print_env MERIDIAN_ENGINE MERIDIAN_DOCKER_CLI
    [[ -n "${DOCKER_HOST:-}" ]] && print_env DOCKER_HOST
    return
  fi
  [[ "${engine}" == docker ]] && die "MERIDIAN_ENGINE=docker, but no Docker daemon answers"
  start_podman
  export MERIDIAN_ENGINE=podman DOCKER_HOST="unix://${socket}" DOCKER_BUILDKIT=0 \
    MERIDIAN_ENGINE_LOG="${log_file}"
  print_env MERIDIAN_ENGINE MERIDIAN_DOCKER_CLI DOCKER_HOST DOCKER_BUILDKIT CONTAINERS_CONF \
    CONTAINERS_STORAGE_CONF MERIDIAN_ENGINE_LOG
}

cmd_status() {
  if ours_running; then
    echo "podman: service $(cat "${pid_file}") on unix://${socket}, $(grep -m1 '^driver' "${storage_conf}")"
  elif docker_answers; then
    echo "docker: daemon at ${DOCKER_HOST:-its default socket}"
  else
    echo "none: no Docker daemon answers and the Podman service is not running"
    return 1
  fi
}

cmd_stop() {
  if ! ours_running; then
    say "the Podman service is not running"
    return
  fi
  # The restart loop and the service it runs: the process group setsid created.
  kill -- "-$(cat "${pid_file}")"
  rm -f "${pid_file}" "${socket}"
  say "stopped the Podman service"
}

case "${1:-env}" in
  env) cmd_env ;;
  status) cmd_status ;;
  stop) cmd_stop ;;
  -h | --help | help) usage ;;
  *) die "unknown command '$1' (env, status, stop)" ;;
esac
