#!/usr/bin/env bash
# `make test-images`: checks every service image Pants built last (make docker first).
#
#   tools/images/test.sh [PACKAGE...]     default: every services/<package>
#
# For each image:
#   - under the size budget (50 MB uncompressed)
#   - metadata: user 65532:65532, port 8080, exec-form entry point, OCI labels, and
#     nothing of the commit (no revision, version or date in labels or
#     /etc/meridian/build.json): the same inputs give the same image on every commit
#   - runs as Kubernetes runs it: read-only root, tmpfs /tmp, all capabilities dropped,
#     no privilege escalation; backing services configured but unreachable; the build
#     revision and version injected as a deployment does (MERIDIAN_BUILD_* variables)
#   - /health/live answers 200, /health/startup 200, /metrics 200, /health/ready 503
#     (its backing services are down) and /version names the injected revision
#   - the service process is uid/gid 65532, cannot write / and can write /tmp
#   - no shell: --entrypoint /bin/sh (and bash, dash) fails
#   - stops cleanly (exit 0) on SIGTERM
# and for each dev image (:dev-image, what Tilt deploys), live update as Tilt does it:
#   - a changed main.py sent through `tar -C / -x -f -` in the running container
#     replaces the image's copy, the service restarts itself (MERIDIAN_RELOAD=1) and
#     serves the change; `rm -rf` removes a synced file
# and Tilt's build command (tools/tilt-build-image.sh) against a plain-HTTP registry on
# localhost (Debian's docker-registry), as a cluster's local registry is: one push,
# of Tilt's tag only (--no-tilt-push skips it).
set -euo pipefail
# shellcheck source=tools/images/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Podman 4.3 now and then fails to start a container with "write child: broken pipe"
# (exit 125, an engine error, not the container's). Such a start is retried; every
# other outcome, failures included, is reported as it is.
docker() {
  if [[ "${1:-}" != run ]]; then
    command docker "$@"
    return
  fi
  local attempt status errors
  errors="$(mktemp)"
  for attempt in 1 2 3; do
    status=0
    command docker "$@" 2>"${errors}" || status=$?
    if [[ ${status} -eq 125 ]] && grep -q 'broken pipe' "${errors}" && [[ ${attempt} -lt 3 ]]; then
      sleep 1
      continue
    fi
    break
  done
  cat "${errors}" >&2
  rm -f "${errors}"
  return "${status}"
}

tilt_push=true
if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then
  usage
  exit 0
elif [[ "${1:-}" == --no-tilt-push ]]; then
  tilt_push=false
  shift
fi
use_engine
use_build_metadata # what a deployment injects and /version must show: this tree
if (($#)); then packages=("$@"); else read -r -a packages <<<"$(service_packages | tr '\n' ' ')"; fi

failures=0
containers=()
cleanup() {
  local container
  for container in "${containers[@]}"; do
    docker rm -f "${container}" >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT

check() { # check DESCRIPTION COMMAND...
  local description="$1"
  shift
  if "$@"; then
    printf '  ok    %s\n' "${description}"
  else
    printf '  FAIL  %s\n' "${description}"
    failures=$((failures + 1))
  fi
}

equals() { [[ "$1" == "$2" ]] || { printf '        expected %q, got %q\n' "$2" "$1" && false; }; }

http_status() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$1" || true; }

json_field() { python3 -c 'import json, sys; print(json.loads(sys.argv[1]).get(sys.argv[2], ""))' "$1" "$2"; }

label() { docker image inspect --format "{{index .Config.Labels \"org.opencontainers.image.$2\"}}" "$1"; }

in_container() { # in_container CONTAINER PYTHON-CODE: run as the container's own user
  docker exec "$1" /usr/bin/python3.11 -I -c "$2"
}

wait_live() { # wait_live URL: until it answers 200, or fail after 30 s
  local deadline=$((SECONDS + 30))
  until [[ "$(http_status "$1")" == 200 ]]; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

no_shell() {
  local image="$1" shell
  # Control: the same kind of run works with a program that is there, so a failure
  # below means the shell is missing, not that the engine cannot run the image.
  docker run --rm --entrypoint /usr/bin/python3.11 "${image}" -c 'pass' || return 1
  for shell in /bin/sh /bin/bash /usr/bin/dash; do
    if docker run --rm --entrypoint "${shell}" "${image}" -c true >/dev/null 2>&1; then
      echo "        ${shell} ran" >&2
      return 1
    fi
  done
}

test_image() {
  local package="$1" service="${1//_/-}" image container port base version
  image="$(image_id "${package}")"
  echo "meridian/${service} (${image:0:12})"

  local size
  size="$(docker image inspect --format '{{.Size}}' "${image}")"
  check "size $(megabytes "${size}") MB < $(megabytes "${image_budget_bytes}") MB" \
    test "${size}" -lt "${image_budget_bytes}"
  check "runs as 65532:65532" equals "$(docker image inspect --format '{{.Config.User}}' "${image}")" "65532:65532"
  check "exposes 8080/tcp" equals "$(docker image inspect --format '{{json .Config.ExposedPorts}}' "${image}")" '{"8080/tcp":{}}'
  check "exec-form entry point" equals "$(docker image inspect --format '{{json .Config.Entrypoint}}' "${image}")" '["/app/pex"]'
  check "label title ${service}" equals "$(label "${image}" title)" "${service}"
  check "label source" equals "$(label "${image}" source)" "${MERIDIAN_SOURCE_URL}"
  check "no label names the commit (revision, version, created)" equals \
    "$(label "${image}" revision)$(label "${image}" version)$(label "${image}" created)" ""

  service_run_args
  run_service_args+=(-e "MERIDIAN_BUILD_REVISION=${MERIDIAN_BUILD_REVISION}" -e "MERIDIAN_BUILD_VERSION=${MERIDIAN_BUILD_VERSION}")
  container="$(docker run -d "${run_service_args[@]}" "${image}")"
  containers+=("${container}")
  port="$(host_port "${container}")"
  base="http://127.0.0.1:${port}"
  if ! check "/health/live 200 (read-only root, tmpfs /tmp, no capabilities)" wait_live "${base}/health/live"; then
    docker logs "${container}" 2>&1 | tail -20 | sed 's/^/        /'
    return
  fi
  # 503 until the client libraries have loaded in the background and checks ran once.
  check "/health/startup 200" wait_live "${base}/health/startup"
  check "/metrics 200" equals "$(http_status "${base}/metrics")" 200
  check "/health/ready 503 with its backing services down" equals "$(http_status "${base}/health/ready")" 503
  version="$(curl -s --max-time 5 "${base}/version")"
  check "/version revision ${MERIDIAN_BUILD_REVISION}" equals "$(json_field "${version}" revision)" "${MERIDIAN_BUILD_REVISION}"
  check "/version version ${MERIDIAN_BUILD_VERSION}" equals "$(json_field "${version}" version)" "${MERIDIAN_BUILD_VERSION}"
  check "/version name ${service}" equals "$(json_field "${version}" name)" "${service}"
  check "/etc/meridian/build.json names the service and nothing of the commit" equals \
    "$(in_container "${container}" 'import json; print(*sorted(json.load(open("/etc/meridian/build.json")).items()))')" \
    "('service', '${service}') ('source', '${MERIDIAN_SOURCE_URL}')"
  check "the service process is uid/gid 65532" equals \
    "$(in_container "${container}" 'print(*(l.split()[1] for l in open("/proc/1/status") if l.startswith(("Uid:", "Gid:"))))')" \
    "65532 65532"
  check "the root filesystem is read-only" in_container "${container}" '
import errno
try:
    open("/app/probe", "w")
except OSError as error:
    raise SystemExit(error.errno not in (errno.EROFS, errno.EACCES))
raise SystemExit(1)'
  check "/tmp is writable" in_container "${container}" 'open("/tmp/probe", "w").write("ok")'
  check "no shell (--entrypoint /bin/sh, /bin/bash, /usr/bin/dash fail)" no_shell "${image}"
  docker stop --time 15 "${container}" >/dev/null
  check "stops with exit code 0 on SIGTERM" equals "$(docker inspect --format '{{.State.ExitCode}}' "${container}")" 0
}

# A tarball as Tilt's live_update sends it: the synced directory, then its files, named
# by their path in the container without the leading slash.
sync_archive() { # sync_archive DIRECTORY NAME CONTENT
  python3 - "$@" <<'EOF'
import io, sys, tarfile, time
directory, name, content = sys.argv[1].lstrip("/"), sys.argv[2], sys.argv[3].encode()
with tarfile.open(fileobj=sys.stdout.buffer, mode="w|") as out:
    folder = tarfile.TarInfo(directory)
    folder.type, folder.mode, folder.mtime = tarfile.DIRTYPE, 0o755, time.time()
    out.addfile(folder)
    member = tarfile.TarInfo(f"{directory}/{name}")
    member.size, member.mode, member.mtime = len(content), 0o644, time.time()
    out.addfile(member, io.BytesIO(content))
EOF
}

# Empty while the service restarts.
version_name() { json_field "$(curl -s --max-time 5 "$1/version")" name 2>/dev/null || true; }

wait_version_name() { # wait_version_name URL NAME: until /version names NAME, or 30 s
  local deadline=$((SECONDS + 30))
  until [[ "$(version_name "$1")" == "$2" ]]; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

test_dev_image() {
  local package="$1" service="${1//_/-}" image container base main synced
  local package_dir="/app/lib/python3.11/site-packages/$1"
  image="$(built_image_id "services.${package}" dev-image)"
  echo "meridian/${service}:dev (${image:0:12}): live update as Tilt does it"
  # As overlays/dev runs it: root filesystem writable, the service reloading itself.
  service_run_args
  local dev_args=("${run_service_args[@]/--read-only/--tmpfs=/run}")
  container="$(docker run -d "${dev_args[@]}" -e MERIDIAN_RELOAD=1 "${image}")"
  containers+=("${container}")
  base="http://127.0.0.1:$(host_port "${container}")"
  check "/health/live 200" wait_live "${base}/health/live" || return 0
  main="$(cat "${repo_root}/services/${package}/main.py")"
  # Renames the service, which /version shows once the synced module runs.
  synced="${main}"$'\n'"SERVICE = __import__(\"dataclasses\").replace(SERVICE, name=\"${service}-synced\")"$'\n'
  check "tar -C / -x -f - replaces main.py in site-packages" \
    docker exec -i "${container}" tar -C / -x -f - < <(sync_archive "${package_dir}" main.py "${synced}")
  check "the service restarts itself and serves the synced code" \
    wait_version_name "${base}" "${service}-synced"
  docker exec -i "${container}" tar -C / -x -f - < <(sync_archive "${package_dir}" obsolete.py "")
  check "rm -rf removes a synced file" docker exec "${container}" rm -rf "${package_dir}/obsolete.py"
  check "  ... and it is gone" in_container "${container}" \
    "import os, sys; sys.exit(os.path.exists('${package_dir}/obsolete.py'))"
  docker rm -f "${container}" >/dev/null
}

# A registry as a cluster's local one (KEP-1755 local-registry-hosting): plain HTTP on
# localhost. Every manifest pushed to it shows in its log.
start_registry() { # start_registry DIRECTORY PORT
  printf '%s\n' "version: 0.1" "log: {level: info, formatter: text}" \
    "storage: {filesystem: {rootdirectory: $1/data}}" "http: {addr: \"127.0.0.1:$2\"}" >"$1/config.yml"
  docker-registry serve "$1/config.yml" >"$1/log" 2>&1 &
  registry_pid=$!
  local deadline=$((SECONDS + 15))
  until [[ "$(http_status "http://127.0.0.1:$2/v2/")" == 200 ]]; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

test_tilt_push() {
  local package="$1" service="${1//_/-}" registry port ref tags
  command -v docker-registry >/dev/null || die "docker-registry is missing: tools/prerequisites.sh installs it"
  registry="$(mktemp -d)"
  port="$(free_port)"
  echo "tools/tilt-build-image.sh services/${package} to a plain-HTTP registry on localhost:${port}"
  check "the registry starts" start_registry "${registry}" "${port}" || return 0
  ref="localhost:${port}/meridian/${service}:tilt-build-1"
  check "the build command succeeds" env EXPECTED_REF="${ref}" EXPECTED_REGISTRY="localhost:${port}" \
    MERIDIAN_KUBE_CONTEXT=kind-meridian "${repo_root}/tools/tilt-build-image.sh" "services/${package}"
  tags="$(curl -s --max-time 5 "http://127.0.0.1:${port}/v2/meridian/${service}/tags/list")"
  check "the registry holds Tilt's tag and no other" equals "$(json_field "${tags}" tags)" "['tilt-build-1']"
  check "one manifest was pushed" equals \
    "$(grep -c "PUT /v2/meridian/${service}/manifests/" "${registry}/log" || true)" 1
  kill "${registry_pid}"
  wait "${registry_pid}" 2>/dev/null || true
  rm -rf "${registry}"
}

for package in "${packages[@]}"; do
  [[ -f "${repo_root}/services/${package}/BUILD" ]] || die "services/${package} is not a service"
  test_image "${package}"
  test_dev_image "${package}"
done
${tilt_push} && test_tilt_push "${packages[0]}"

if ((failures)); then
  die "${failures} check(s) failed"
fi
say "all checks passed for ${#packages[@]} image(s)"
