#!/usr/bin/env bash
# `make bench-images`: sizes, rebuild time, layer reuse, reproducibility and start-up
# time of the service images.
#
#   tools/images/bench.sh [--service PACKAGE] [--runs N] [--skip-independent]
#
#   1. sizes     every image and the base alone: uncompressed (as `docker images`
#                shows) and gzipped (as a registry stores them), per layer for one
#   2. paths     the 10 largest paths of one service image
#   3. rebuild   a one-line change to services/PACKAGE/main.py, then
#                `./pants package services/PACKAGE:image` with warm caches: wall time,
#                which layers changed (only srcs should), and after the change is
#                reverted (always, by a trap) whether the rebuilt image is the original
#   3b. commit   the same tree built as another commit (other MERIDIAN_BUILD_REVISION
#                and _VERSION): the same image id, as a release's build-once digest needs
#   4. repro     the same commit built again in an independent, empty image store
#                (a second Podman service): base, deps and srcs layer digests
#                compared (skipped with a Docker daemon, or with --skip-independent)
#   5. start-up  container start to /health/live and /health/startup, median of N runs,
#                with the image's start-up bytecode, without its standard-library part,
#                and without any of it
#
# Run `make docker` (tools/images/build.sh) first.
set -euo pipefail
# shellcheck source=tools/images/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

package=""
runs=5
independent=true
while (($#)); do
  case "$1" in
    --service)
      package="${2:?--service needs a package, e.g. current_account}"
      shift
      ;;
    --runs)
      runs="${2:?--runs needs a number}"
      shift
      ;;
    --skip-independent) independent=false ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) die "unknown argument $1 (try --help)" ;;
  esac
  shift
done
cd "${repo_root}"
[[ -n "${package}" ]] || package="$(service_packages | sed -n 1p)"
[[ -f "services/${package}/BUILD" ]] || die "services/${package} is not a service"
service="${package//_/-}"
target="services/${package}:image"
readonly layer_names=(base deps srcs)

use_engine
use_build_metadata
scratch="$(mktemp -d)"

heading() { printf '\n== %s\n' "$*"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
seconds() { awk -v ms="$1" 'BEGIN { printf "%.2f", ms / 1000 }'; }
# The image's layers with content (BuildKit adds empty ones for WORKDIR), bottom up.
readonly empty_layer=sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef
layers_of() {
  docker image inspect --format '{{range .RootFS.Layers}}{{println .}}{{end}}' "$1" | sed -e '/^$/d' -e "/^${empty_layer}$/d"
}

# --- 1. sizes and 2. paths ------------------------------------------------------------

heading "sizes (MB; 1 MB = 10^6 bytes; budget per service image $(megabytes "${image_budget_bytes}"))"
printf '%-32s %13s %11s\n' "image" "uncompressed" "gzipped"
sizes() { # sizes NAME IMAGE
  local archive="${scratch}/$1.tar" gzip
  mkdir -p "$(dirname "${archive}")"
  docker save "$2" -o "${archive}"
  gzip="$(python3 tools/images/imagestats.py "${archive}" --json |
    python3 -c 'import json, sys; print(sum(layer["gzip_size"] for layer in json.load(sys.stdin)))')"
  printf '%-32s %13s %11s\n' "$1" "$(megabytes "$(docker image inspect --format '{{.Size}}' "$2")")" "$(megabytes "${gzip}")"
}
sizes "meridian/base" "$(base_image_id)"
for each in $(service_packages); do
  sizes "meridian/${each//_/-}" "$(image_id "${each}")"
done

heading "layers and the 10 largest paths of meridian/${service}"
python3 tools/images/imagestats.py "${scratch}/meridian/${service}.tar" \
  --names "$(
    IFS=,
    echo "${layer_names[*]}"
  )" --top 10
rm -rf "${scratch:?}/meridian"

# --- 3. rebuild after a one-line change -----------------------------------------------

source_file="services/${package}/main.py"
backup="${scratch}/main.py"
restore() {
  if [[ -f "${backup}" ]] && ! cmp -s "${backup}" "${source_file}"; then
    cp "${backup}" "${source_file}"
    say "restored ${source_file}"
  fi
}
trap 'restore; rm -rf "${scratch}"' EXIT
trap 'exit 130' INT TERM

timed_package() { # timed_package LOG TARGET...: wall time in ms on stdout
  local log="$1" started restarts
  shift
  started="$(now_ms)"
  restarts="$(engine_restarts)"
  pants_package "$@" >"${log}" 2>&1 || {
    cat "${log}" >&2
    die "./pants package $* failed"
  }
  (($(engine_restarts) == restarts)) || say "the engine restarted during this build: its time includes a retry"
  echo $(($(now_ms) - started))
}

# Seconds between Pants' Starting/Completed lines of the last step matching $2.
step_seconds() {
  python3 - "$1" "$2" <<'EOF'
import re, sys
from datetime import datetime
log, pattern = sys.argv[1], sys.argv[2]
starts = {}
last = None
for line in open(log):
    match = re.match(r"(\d\d:\d\d:\d\d\.\d\d) \[INFO\] (Starting|Completed): (.*)", line)
    if not match or not re.search(pattern, match[3]):
        continue
    stamp = datetime.strptime(match[1], "%H:%M:%S.%f")
    if match[2] == "Starting":
        starts[match[3]] = stamp
    elif match[3] in starts:
        last = (stamp - starts[match[3]]).total_seconds()
print("n/a" if last is None else f"{last:.2f}")
EOF
}

heading "rebuild of ${target} after a one-line change (warm caches)"
timed_package "${scratch}/warm.log" "${target}" >/dev/null # make sure everything is cached
original="$(image_id "${package}")"
read -r -a before <<<"$(layers_of "${original}" | tr '\n' ' ')"
unchanged_ms="$(timed_package "${scratch}/nochange.log" "${target}")"

cp "${source_file}" "${backup}"
printf '_BENCH_MARKER = "%s"  # added by tools/images/bench.sh, reverted when it ends\n' \
  "$(date +%s%N)" >>"${source_file}"
sleep 2 # as after an edit: pantsd has seen the change before the build starts
changed_ms="$(timed_package "${scratch}/changed.log" "${target}")"
read -r -a after <<<"$(layers_of "$(image_id "${package}")" | tr '\n' ' ')"
restore
sleep 2
timed_package "${scratch}/reverted.log" "${target}" >/dev/null
read -r -a reverted <<<"$(layers_of "$(image_id "${package}")" | tr '\n' ' ')"

printf '%-44s %7s s\n' "no change: ./pants package ${target}" "$(seconds "${unchanged_ms}")"
printf '%-44s %7s s\n' "one-line change: ./pants package ${target}" "$(seconds "${changed_ms}")"
printf '%-44s %7s s\n' "  of which the first-party PEX (Pants)" \
  "$(step_seconds "${scratch}/changed.log" "image-srcs\.pex")"
printf '%-44s %7s s\n' "  of which the image build (docker build)" \
  "$(step_seconds "${scratch}/changed.log" "docker image meridian/${service}:")"
printf '%-10s %-21s %-10s %-21s %s\n' "layer" "before" "after edit" "" "after revert"
for index in "${!before[@]}"; do
  name="${layer_names[index]:-${index}}"
  edited="same"
  [[ "${after[index]:-}" == "${before[index]}" ]] || edited="CHANGED ${after[index]:7:12}"
  back="same as before"
  [[ "${reverted[index]:-}" == "${before[index]}" ]] || back="DIFFERENT ${reverted[index]:7:12}"
  printf '%-10s %-21s %-32s %s\n' "${name}" "${before[index]:7:12}" "${edited}" "${back}"
done

# --- 3b. the same inputs as another commit --------------------------------------------

heading "commit independence: ${target} built as another commit"
as_built="$(image_id "${package}")"
MERIDIAN_BUILD_REVISION=0123456789ab MERIDIAN_BUILD_VERSION=9.9.9 \
  timed_package "${scratch}/other-commit.log" "${target}" >/dev/null
as_other="$(image_id "${package}")"
verdict="the same image"
[[ "${as_other}" == "${as_built}" ]] || verdict="DIFFERENT images: the image holds commit metadata"
printf '%-24s %s\n' "${MERIDIAN_BUILD_REVISION}" "${as_built:0:12}" "0123456789ab" "${as_other:0:12}"
echo "${verdict}"
timed_package "${scratch}/back.log" "${target}" >/dev/null # dist/ names this tree's build again

# --- 4. the same commit built again, independently ------------------------------------

if ${independent} && [[ "${DOCKER_HOST:-}" == unix://*/podman/podman.sock ]]; then
  heading "reproducibility: ${target} built again in an empty image store"
  # A second Podman service with its own store, state and temporary files, and the
  # same storage driver: drivers order a layer's tar entries differently (vfs sorts
  # full paths, overlay walks directories), so only the same driver can give the same
  # digests.
  store="$(mktemp -d /var/tmp/meridian-bench-store.XXXXXX)"
  socket="${store}/podman.sock"
  driver="$(sed -n 's/^driver = "\(.*\)"$/\1/p' "${CONTAINERS_STORAGE_CONF}")"
  printf '[storage]\ndriver = "%s"\nrunroot = "%s/run"\ngraphroot = "%s/root"\n' \
    "${driver}" "${store}" "${store}" >"${store}/storage.conf"
  CONTAINERS_STORAGE_CONF="${store}/storage.conf" setsid podman --tmpdir "${store}/tmp" \
    system service --time=0 "unix://${socket}" >"${store}/service.log" 2>&1 </dev/null &
  bench_service=$!
  stop_bench_service() {
    # Removing the images unmounts their layers; then nothing in the store is busy.
    DOCKER_HOST="unix://${socket}" docker image prune --all --force >/dev/null 2>&1 || true
    kill "${bench_service}" 2>/dev/null || true
    wait "${bench_service}" 2>/dev/null || true
    local mount
    awk -v store="${store}" 'index($2, store) == 1 { print $2 }' /proc/mounts | sort -r |
      while read -r mount; do umount "${mount}" || true; done
    rm -rf "${store:?}"
  }
  trap 'stop_bench_service; restore; rm -rf "${scratch}"' EXIT
  for _ in $(seq 1 30); do
    DOCKER_HOST="unix://${socket}" docker version >/dev/null 2>&1 && break
    sleep 1
  done
  cold_ms="$(DOCKER_HOST="unix://${socket}" timed_package "${scratch}/cold.log" "${target}")"
  read -r -a independent_layers <<<"$(DOCKER_HOST="unix://${socket}" layers_of "$(image_id "${package}")" | tr '\n' ' ')"
  stop_bench_service
  trap 'restore; rm -rf "${scratch}"' EXIT
  # Back to the main store's image in dist/ (the build above rewrote the docker-info).
  timed_package "${scratch}/restore.log" "${target}" >/dev/null
  printf 'cold build in an empty store: %s s\n' "$(seconds "${cold_ms}")"
  printf '%-10s %-14s %-14s %s\n' "layer" "main store" "empty store" ""
  for index in "${!before[@]}"; do
    same="identical"
    [[ "${independent_layers[index]:-}" == "${before[index]}" ]] || same="DIFFERENT"
    printf '%-10s %-14s %-14s %s\n' "${layer_names[index]:-${index}}" "${before[index]:7:12}" \
      "${independent_layers[index]:7:12}" "${same}"
  done
else
  heading "reproducibility: skipped (needs the Podman engine; --skip-independent)"
fi

# --- 5. start-up time -----------------------------------------------------------------

heading "start-up of meridian/${service}: container start -> first 200 (median of ${runs})"
image="$(image_id "${package}")"
variant() { # variant TAG PYTHON-GLOB...: the image without the __pycache__ dirs matched
  local tag="$1"
  shift
  local globs
  globs="$(printf '%s ' "$@")"
  mkdir -p "${scratch}/empty"
  # By a tag: BuildKit takes no image id in FROM.
  docker tag "${image}" "meridian/${service}:bench-as-built"
  docker build --quiet --tag "${tag}" -f - "${scratch}/empty" >/dev/null <<EOF
FROM meridian/${service}:bench-as-built
USER 0:0
RUN ["/usr/bin/python3.11", "-I", "-c", "import glob, shutil\\nfor pattern in '${globs}'.split():\\n    for path in glob.glob(pattern, recursive=True):\\n        shutil.rmtree(path)"]
USER 65532:65532
EOF
}
no_stdlib="meridian/${service}:bench-no-stdlib-bytecode"
no_bytecode="meridian/${service}:bench-no-startup-bytecode"
variant "${no_stdlib}" "/usr/lib/python3.11/**/__pycache__"
variant "${no_bytecode}" "/usr/lib/python3.11/**/__pycache__" "/app/lib/python3.11/site-packages/**/__pycache__"

startup() { # startup IMAGE: "<ms to live> <ms to startup>" for one cold container start
  local container port live="" ready="" started
  service_run_args
  container="$(docker create "${run_service_args[@]}" "$1")"
  started="$(now_ms)"
  docker start "${container}" >/dev/null
  port="$(host_port "${container}")"
  while [[ -z "${ready}" ]] && (($(now_ms) - started < 30000)); do
    if [[ -z "${live}" ]] && curl -fs -o /dev/null "http://127.0.0.1:${port}/health/live"; then
      live=$(($(now_ms) - started))
    fi
    if [[ -n "${live}" ]] && curl -fs -o /dev/null "http://127.0.0.1:${port}/health/startup"; then
      ready=$(($(now_ms) - started))
    fi
    [[ -n "${ready}" ]] || sleep 0.01
  done
  docker rm -f "${container}" >/dev/null
  echo "${live:-30000} ${ready:-30000}"
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
baseline() { # the engine's own share: start to exit of a container running `python -c pass`
  local container started
  container="$(docker create --entrypoint /usr/bin/python3.11 "${image}" -c pass)"
  started="$(now_ms)"
  docker start --attach "${container}" >/dev/null
  echo $(($(now_ms) - started))
  docker rm -f "${container}" >/dev/null
}

printf '%-40s %12s %15s\n' "image" "live (s)" "startup (s)"
for candidate in "${image}" "${no_stdlib}" "${no_bytecode}"; do
  : >"${scratch}/live" && : >"${scratch}/startup"
  for _ in $(seq 1 "${runs}"); do
    read -r live ready < <(startup "${candidate}")
    echo "${live}" >>"${scratch}/live"
    echo "${ready}" >>"${scratch}/startup"
  done
  case "${candidate}" in
    "${no_stdlib}") label="without standard-library bytecode" ;;
    "${no_bytecode}") label="without any start-up bytecode" ;;
    *) label="as built" ;;
  esac
  printf '%-40s %12s %15s\n' "${label}" "$(seconds "$(median <"${scratch}/live")")" \
    "$(seconds "$(median <"${scratch}/startup")")"
done
for _ in $(seq 1 "${runs}"); do baseline; done >"${scratch}/baseline"
printf '%-40s %12s\n' "(engine: start to exit of python -c pass)" "$(seconds "$(median <"${scratch}/baseline")")"
docker rmi "${no_stdlib}" "${no_bytecode}" "meridian/${service}:bench-as-built" >/dev/null
