#!/usr/bin/env bash
# Finds a container engine for Meridian's image builds and tests, starting one if needed,
# and prints the environment that points the docker CLI (and so Pants) at it.
#
#   eval "$(tools/images/engine.sh env)"   # a Docker daemon (started if need be), else Podman
#   tools/images/engine.sh status           # which engine, where
#   tools/images/engine.sh stop             # stop the engines this script started
#
# Pants 2.17 drives the `docker` CLI, which needs a daemon. In order:
#   1. a Docker daemon that answers (DOCKER_HOST, else the default socket);
#   2. else, as root on Linux, a private Docker daemon: Debian's docker.io (installed
#      with apt if missing) on its own socket and data root, without networking
#      (no bridge, no iptables: containers use the host's network, builds none);
#   3. else Podman's Docker-compatible API (`podman system service`), configured by
#      tools/containers/containers.conf; it has no BuildKit (DOCKER_BUILDKIT=0).
# Docker builds use BuildKit when the docker CLI can: one with the buildx plugin, or
# a CLI older than 23.0 (BuildKit built in, as Debian's /usr/bin/docker 20.10); else
# the classic builder.
#
# Printed: DOCKER_HOST, DOCKER_BUILDKIT, MERIDIAN_ENGINE (docker | podman),
# MERIDIAN_DOCKER_CLI (the CLI tools/images/bin/docker runs), MERIDIAN_BUILD_NETWORK and
# MERIDIAN_CONTAINER_NETWORK (for a daemon without networking), MERIDIAN_ENGINE_LOG, and
# for Podman CONTAINERS_CONF and CONTAINERS_STORAGE_CONF (to run `podman` itself on the
# same images).
#
# Settings (environment):
#   MERIDIAN_ENGINE                 auto (default) | docker | podman
#   MERIDIAN_DOCKER_CLI             the docker CLI to use (default: one that can BuildKit,
#                                   else the first on PATH)
#   MERIDIAN_PODMAN_STORAGE_DRIVER  auto (default) | overlay | vfs. auto uses overlay when
#                                   the kernel can mount it here, else vfs (slower: a full
#                                   copy per layer, but it works inside any container).
#                                   The private Docker daemon decides the same way.
set -euo pipefail
# shellcheck source=tools/images/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly containers_conf="${repo_root}/tools/containers/containers.conf"
if [[ "$(id -u)" == 0 ]]; then
  readonly state_dir="/run/meridian/podman"
  readonly storage_root="/var/lib/meridian/containers"
  readonly dockerd_state="/run/meridian/docker"
  readonly dockerd_data="/var/lib/meridian/docker"
else
  readonly state_dir="${XDG_RUNTIME_DIR:-/tmp/meridian-$(id -u)}/meridian/podman"
  readonly storage_root="${XDG_DATA_HOME:-${HOME}/.local/share}/meridian/containers"
  readonly dockerd_state="" dockerd_data=""
fi
readonly dockerd_socket="${dockerd_state}/docker.sock"
readonly dockerd_pid_file="${dockerd_state}/dockerd.pid"
readonly dockerd_log="${dockerd_state}/dockerd.log"
readonly socket="${state_dir}/podman.sock"
readonly pid_file="${state_dir}/service.pid"
readonly log_file="${state_dir}/service.log"
readonly storage_conf="${state_dir}/storage.conf"

# True when the docker CLI reaches a server (with whatever DOCKER_HOST is set).
docker_answers() {
  local limit=() cli="${MERIDIAN_DOCKER_CLI:-docker}"
  command -v "${cli}" >/dev/null 2>&1 || return 1
  command -v timeout >/dev/null 2>&1 && limit=(timeout 10) # not on macOS
  ${limit[@]+"${limit[@]}"} "${cli}" version --format '{{.Server.Version}}' >/dev/null 2>&1
}

# The private Docker daemon this script started is alive.
dockerd_running() {
  [[ -n "${dockerd_state}" && -f "${dockerd_pid_file}" ]] && kill -0 "$(cat "${dockerd_pid_file}")" 2>/dev/null
}

# Every docker CLI on PATH (and Debian's), this repository's wrapper left out.
docker_clis() {
  local directory wrapper
  wrapper="$(cd "${repo_root}/tools/images/bin" && pwd -P)"
  IFS=: read -r -a directories <<<"${PATH}:/usr/bin"
  for directory in "${directories[@]}"; do
    [[ -x "${directory}/docker" && "$(cd "${directory}" && pwd -P)" != "${wrapper}" ]] &&
      printf '%s\n' "${directory}/docker"
  done | awk '!seen[$0]++'
}

# A CLI builds with BuildKit if it has the buildx plugin, or predates 23.0, when
# BuildKit was built into the CLI rather than a plugin.
cli_has_buildkit() {
  local major
  "$1" buildx version >/dev/null 2>&1 && return 0
  major="$("$1" version --format '{{.Client.Version}}' 2>/dev/null | cut -d. -f1)"
  [[ "${major}" =~ ^[0-9]+$ ]] && ((major < 23))
}

# MERIDIAN_DOCKER_CLI if set, else the first CLI that can BuildKit, else the first.
choose_docker_cli() {
  local cli
  if [[ -n "${MERIDIAN_DOCKER_CLI:-}" ]]; then
    [[ -x "${MERIDIAN_DOCKER_CLI}" ]] ||
      die "MERIDIAN_DOCKER_CLI=${MERIDIAN_DOCKER_CLI} is not an executable docker CLI; expected a path such as /usr/bin/docker"
    return
  fi
  for cli in $(docker_clis); do
    if cli_has_buildkit "${cli}"; then
      MERIDIAN_DOCKER_CLI="${cli}"
      return
    fi
  done
  MERIDIAN_DOCKER_CLI="$(docker_clis | sed -n 1p)"
}

# The kernel can mount overlayfs on this filesystem (not inside many containers,
# whose root is overlayfs itself).
overlay_mounts() {
  local probe
  [[ "$(id -u)" == 0 ]] || return 1
  mkdir -p "$1"
  probe="$(mktemp -d "$1/.overlay-probe.XXXXXX")"
  mkdir "${probe}/lower" "${probe}/upper" "${probe}/work" "${probe}/merged"
  if mount -t overlay overlay \
    -o "lowerdir=${probe}/lower,upperdir=${probe}/upper,workdir=${probe}/work" \
    "${probe}/merged" 2>/dev/null; then
    umount "${probe}/merged"
    rm -rf "${probe}"
    return 0
  fi
  rm -rf "${probe}"
  return 1
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
  local wanted="${MERIDIAN_PODMAN_STORAGE_DRIVER:-auto}"
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
  if overlay_mounts "${storage_root}"; then echo overlay; else echo vfs; fi
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

install_dockerd() {
  command -v dockerd >/dev/null 2>&1 && return
  say "no Docker daemon: installing Debian's docker.io with apt"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >&2
}

# As root on Linux with apt or an installed dockerd, a private daemon can be started.
can_start_dockerd() {
  [[ -n "${dockerd_state}" && "$(uname -s)" == Linux ]] || return 1
  command -v dockerd >/dev/null 2>&1 || command -v apt-get >/dev/null 2>&1
}

start_dockerd() {
  local driver waited=0
  if ! dockerd_running; then
    install_dockerd
    mkdir -p "${dockerd_state}" "${dockerd_data}"
    case "${MERIDIAN_PODMAN_STORAGE_DRIVER:-auto}" in
      vfs) driver=vfs ;;
      overlay) driver=overlay2 ;;
      *) if [[ -d "${dockerd_data}/vfs" ]] || ! overlay_mounts "${dockerd_data}"; then driver=vfs; else driver=overlay2; fi ;;
    esac
    rm -f "${dockerd_socket}"
    say "starting a Docker daemon on ${dockerd_socket} (storage: ${driver}, log: ${dockerd_log})"
    # No bridge and no iptables rules: nothing on the host changes, and it runs where
    # the network cannot be configured (containers). Builds then need --network none,
    # containers the host's network. It runs from /, like the Podman service below.
    (cd / && exec setsid dockerd --host "unix://${dockerd_socket}" --data-root "${dockerd_data}" \
      --exec-root "${dockerd_state}/exec" --pidfile "${dockerd_state}/daemon.pid" \
      --storage-driver "${driver}" --iptables=false --bridge=none --ip-forward=false \
      --ip-masq=false >"${dockerd_log}" 2>&1 </dev/null) &
    echo "$!" >"${dockerd_pid_file}"
  fi
  until DOCKER_HOST="unix://${dockerd_socket}" docker_answers; do
    if ! dockerd_running || ((waited >= 60)); then
      die "the Docker daemon did not come up; its log (${dockerd_log}):
$(tail -20 "${dockerd_log}" 2>/dev/null)"
    fi
    sleep 1
    waited=$((waited + 1))
  done
}

print_env() {
  local name
  for name in "$@"; do
    printf 'export %s=%q\n' "${name}" "${!name}"
  done
}

use_docker() { # use_docker DESCRIPTION
  say "using the Docker daemon $1"
  export MERIDIAN_ENGINE=docker MERIDIAN_ENGINE_LOG="${MERIDIAN_ENGINE_LOG:-}"
  if cli_has_buildkit "${MERIDIAN_DOCKER_CLI}"; then DOCKER_BUILDKIT=1; else DOCKER_BUILDKIT=0; fi
  export DOCKER_BUILDKIT
  print_env MERIDIAN_ENGINE MERIDIAN_DOCKER_CLI DOCKER_BUILDKIT MERIDIAN_ENGINE_LOG
  [[ -n "${DOCKER_HOST:-}" ]] && print_env DOCKER_HOST
  # A daemon of ours has no networking: builds without any, containers on the host's.
  if [[ "${DOCKER_HOST:-}" == "unix://${dockerd_socket}" ]]; then
    export MERIDIAN_BUILD_NETWORK=none MERIDIAN_CONTAINER_NETWORK=host
  else
    export MERIDIAN_BUILD_NETWORK="" MERIDIAN_CONTAINER_NETWORK=""
  fi
  print_env MERIDIAN_BUILD_NETWORK MERIDIAN_CONTAINER_NETWORK
}

cmd_env() {
  local engine="${MERIDIAN_ENGINE:-auto}"
  case "${engine}" in
    auto | docker | podman) ;;
    *) die "MERIDIAN_ENGINE must be auto, docker or podman, not '${engine}'" ;;
  esac
  choose_docker_cli
  [[ -n "${MERIDIAN_DOCKER_CLI}" ]] || need_docker_cli
  export MERIDIAN_DOCKER_CLI
  if [[ "${engine}" != podman ]]; then
    if [[ "${DOCKER_HOST:-}" != "unix://${state_dir}/"* ]] && docker_answers; then
      use_docker "at ${DOCKER_HOST:-its default socket}"
      return
    fi
    if dockerd_running || can_start_dockerd; then
      start_dockerd
      export DOCKER_HOST="unix://${dockerd_socket}" MERIDIAN_ENGINE_LOG="${dockerd_log}"
      use_docker "this script started (${DOCKER_HOST})"
      return
    fi
    [[ "${engine}" == docker ]] &&
      die "MERIDIAN_ENGINE=docker, but no Docker daemon answers and none can be started here (needs root on Linux)"
  fi
  start_podman
  export MERIDIAN_ENGINE=podman DOCKER_HOST="unix://${socket}" DOCKER_BUILDKIT=0 \
    MERIDIAN_ENGINE_LOG="${log_file}" MERIDIAN_BUILD_NETWORK="" MERIDIAN_CONTAINER_NETWORK=""
  print_env MERIDIAN_ENGINE MERIDIAN_DOCKER_CLI DOCKER_HOST DOCKER_BUILDKIT CONTAINERS_CONF \
    CONTAINERS_STORAGE_CONF MERIDIAN_ENGINE_LOG MERIDIAN_BUILD_NETWORK MERIDIAN_CONTAINER_NETWORK
}

cmd_status() {
  local found=false
  if dockerd_running; then
    echo "docker: daemon $(cat "${dockerd_pid_file}") on unix://${dockerd_socket}"
    found=true
  fi
  if ours_running; then
    echo "podman: service $(cat "${pid_file}") on unix://${socket}, $(grep -m1 '^driver' "${storage_conf}")"
    found=true
  fi
  if ! ${found} && docker_answers; then
    echo "docker: daemon at ${DOCKER_HOST:-its default socket}"
    found=true
  fi
  ${found} || {
    echo "none: no Docker daemon answers and this script started no engine"
    return 1
  }
}

cmd_stop() {
  if dockerd_running; then
    kill -- "-$(cat "${dockerd_pid_file}")"
    rm -f "${dockerd_pid_file}"
    say "stopped the Docker daemon"
  fi
  if ours_running; then
    # The restart loop and the service it runs: the process group setsid created.
    kill -- "-$(cat "${pid_file}")"
    rm -f "${pid_file}" "${socket}"
    say "stopped the Podman service"
  fi
}

case "${1:-env}" in
  env) cmd_env ;;
  status) cmd_status ;;
  stop) cmd_stop ;;
  -h | --help | help) usage ;;
  *) die "unknown command '$1' (env, status, stop)" ;;
esac
