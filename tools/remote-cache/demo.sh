#!/usr/bin/env bash
# `make ci-cache-demo`: proves on this machine that Pants' REAPI remote cache serves
# Meridian's test suite to a machine whose local caches are empty, as CI runners are.
#
#   1. Start a throwaway BuildGrid (ActionCache + CAS + ByteStream) on 127.0.0.1.
#   2. Run 1: `pants test ::` in a fresh clone of HEAD with empty local caches,
#      reading from and writing to the remote cache (it is empty, so all misses).
#   3. Run 2: the same in a second fresh clone with new empty local caches. Every
#      cacheable process should now be a remote hit.
#   4. Print remote hits, lookups, hit ratio and both wall times; exit 1 if fewer than
#      MERIDIAN_CACHE_DEMO_MIN_HIT_PERCENT (default 90) percent of the lookups hit, if any
#      test was not reported "cached remotely", or if anything came from a local cache.
#
# Each run uses its own clone, local store, named caches and no pantsd, so nothing is
# shared between the runs except the remote cache, and the demo never touches the
# caller's checkout or its pantsd. It tests the committed HEAD, not uncommitted edits.
#
# Environment: MERIDIAN_CACHE_DEMO_MIN_HIT_PERCENT (default 90),
#              MERIDIAN_CACHE_DEMO_KEEP=1 keeps the temp dir (clones, caches, logs).
set -euo pipefail

readonly MIN_HIT_PERCENT="${MERIDIAN_CACHE_DEMO_MIN_HIT_PERCENT:-90}"
# BuildGrid 0.4.4 needs Python >= 3.11, and requirements.txt was compiled for 3.11.
readonly PYTHON_MINOR="3.11"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(git -C "${here}" rev-parse --show-toplevel)"
requirements="${here}/requirements.txt"
cache_root="${XDG_CACHE_HOME:-${HOME}/.cache}/meridian/remote-cache"

log() { printf '[ci-cache-demo] %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

find_python() {
  local candidate
  for candidate in "$(command -v "python${PYTHON_MINOR}" || true)" "$(command -v python3 || true)" \
    "${HOME}"/.pyenv/versions/"${PYTHON_MINOR}".*/bin/python"${PYTHON_MINOR}"; do
    if [[ -x "${candidate}" ]] && "${candidate}" -c "import sys, venv; assert sys.version_info[:2] == (${PYTHON_MINOR/./, })" 2>/dev/null; then
      printf '%s' "${candidate}"
      return
    fi
  done
  die "CPython ${PYTHON_MINOR} is needed for BuildGrid (pyenv install ${PYTHON_MINOR} / apt-get install python${PYTHON_MINOR}-venv)"
}

# Installs the hash-pinned BuildGrid into a venv keyed by requirements.txt, so a warm
# demo skips the install and editing the pins installs afresh. Prints the venv path.
install_buildgrid() {
  local python key venv
  python="$(find_python)"
  key="$({ cat "${requirements}"; "${python}" -VV; } | sha256sum | cut -c1-16)"
  venv="${cache_root}/venv-${key}"
  if [[ ! -f "${venv}/ready" ]]; then
    mkdir -p "${cache_root}"
    # Two demos at once must not build the same venv over each other.
    exec 8>"${cache_root}/.lock"
    flock 8
    if [[ ! -f "${venv}/ready" ]]; then
      log "installing BuildGrid into ${venv}"
      rm -rf "${venv}"
      "${python}" -m venv "${venv}"
      # Only the pinned, hash-checked wheels: the machine's pip config (constraints,
      # extra indexes, find-links) is kept out, both as files and as PIP_* variables.
      env -u PIP_CONSTRAINT -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL PIP_CONFIG_FILE=/dev/null \
        "${venv}/bin/python" -m pip install --quiet --disable-pip-version-check \
        --no-deps --require-hashes --only-binary=:all: -r "${requirements}" >&2
      touch "${venv}/ready"
    fi
    exec 8>&-
  fi
  printf '%s' "${venv}"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

work=""    # temp dir: clones, caches, CAS and logs
bgd_pid=""
port=""    # BuildGrid's port
commit=""  # the commit both runs test
cleanup() {
  local status=$?
  if [[ -n "${bgd_pid}" ]] && kill -0 "${bgd_pid}" 2>/dev/null; then
    kill -TERM "${bgd_pid}" 2>/dev/null || true
    # BuildGrid drains for a few seconds on SIGTERM; don't leave it behind if it hangs.
    for _ in $(seq 1 50); do
      kill -0 "${bgd_pid}" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL "${bgd_pid}" 2>/dev/null || true
    wait "${bgd_pid}" 2>/dev/null || true
  fi
  if [[ -n "${work}" && -d "${work}" ]]; then
    if [[ ${status} -ne 0 && -f "${work}/buildgrid.log" ]]; then
      log "last lines of the BuildGrid log:"
      tail -n 20 "${work}/buildgrid.log" >&2 || true
    fi
    if [[ "${MERIDIAN_CACHE_DEMO_KEEP:-0}" == 1 ]]; then
      log "kept ${work}"
    else
      rm -rf "${work}"
    fi
  fi
  exit "${status}"
}
trap cleanup EXIT
# Ctrl-C or a kill still stops the server: exiting runs the EXIT trap.
trap 'exit 130' INT
trap 'exit 143' TERM

start_buildgrid() {
  local venv="$1" port="$2"
  export MERIDIAN_REMOTE_CACHE_PORT="${port}" MERIDIAN_REMOTE_CACHE_DIR="${work}/cas"
  mkdir -p "${MERIDIAN_REMOTE_CACHE_DIR}"
  "${venv}/bin/bgd" server start "${here}/buildgrid.conf" >"${work}/buildgrid.log" 2>&1 &
  bgd_pid=$!
  for _ in $(seq 1 300); do
    kill -0 "${bgd_pid}" 2>/dev/null || die "BuildGrid exited during start-up (log: ${work}/buildgrid.log)"
    if (: <"/dev/tcp/127.0.0.1/${port}") 2>/dev/null; then
      log "BuildGrid listening on 127.0.0.1:${port} (pid ${bgd_pid})"
      return
    fi
    sleep 0.2
  done
  die "BuildGrid did not listen on 127.0.0.1:${port} within 60 s"
}

# run_suite NAME: a fresh clone with fresh local caches runs `pants test ::` against the
# remote cache; its output goes to the terminal and to ${work}/NAME/pants.log, and its
# wall time in seconds to ${work}/NAME/seconds.
run_suite() {
  local name="$1" dir="${work}/$1" started finished
  mkdir -p "${dir}/lmdb_store" "${dir}/named_caches"
  # --shared borrows the caller's object store read-only: fast, and the caller's
  # checkout, index and refs are left alone.
  git clone --quiet --shared --no-checkout "${repo_root}" "${dir}/src"
  git -C "${dir}/src" checkout --quiet --detach "${commit}"

  local -a pants_env=(
    # Empty local caches: the process cache and file store, and the named caches
    # (pip/pex downloads). .pants.d is new with the clone.
    "PANTS_LOCAL_STORE_DIR=${dir}/lmdb_store"
    "PANTS_NAMED_CACHES_DIR=${dir}/named_caches"
  )
  local -a pants_args=(
    # No daemon: nothing survives in memory from one run to the next.
    --no-pantsd
    --no-dynamic-ui --colors=false
    --remote-cache-read --remote-cache-write
    "--remote-store-address=grpc://127.0.0.1:${port}"
    # Cache errors are warned about (with back-off), so a flaky server shows in the output.
    --remote-cache-warnings=backoff
    # "Counters:" at the end of the run: the numbers this demo reports.
    --stats-log
    # Histograms would need a plugin from the package index; the counters do not.
    "--ignore-warnings=+['Please run with \`--plugins=hdrhistogram\`']"
  )

  # The first ./pants in a clone writes its machine-specific .pants.rc; not timed.
  (cd "${dir}/src" && env "${pants_env[@]}" ./pants --no-pantsd --version >/dev/null)

  log "${name}: pants test :: (clone ${dir}/src)"
  started="${EPOCHREALTIME}"
  if ! (cd "${dir}/src" && env "${pants_env[@]}" ./pants "${pants_args[@]}" test ::) 2>&1 | tee "${dir}/pants.log"; then
    die "${name}: pants test :: failed (output above); only passing tests are cached"
  fi
  finished="${EPOCHREALTIME}"
  python3 -c 'import sys; print(f"{float(sys.argv[2]) - float(sys.argv[1]):.1f}")' \
    "${started}" "${finished}" >"${dir}/seconds"
}

# Reads both runs' logs and prints the report; exits non-zero when the check fails.
report() {
  python3 - "${work}" "${MIN_HIT_PERCENT}" <<'PY'
import pathlib, re, sys

work, min_percent = pathlib.Path(sys.argv[1]), float(sys.argv[2])

def counters(log: str) -> dict[str, int]:
    found: dict[str, int] = {}
    in_block = False
    for line in log.splitlines():
        if line.rstrip().endswith("Counters:"):
            in_block, found = True, {}
            continue
        match = re.fullmatch(r"  ([a-z_]+): (\d+)", line) if in_block else None
        if match:
            found[match[1]] = int(match[2])
        else:
            in_block = False
    if not found:
        sys.exit("no 'Counters:' block in the Pants output (is [stats].log supported?)")
    return found

# Pants prints one line per test target, e.g.
#   ✓ libs/x/y_test.py:tests succeeded in 1.20s (cached remotely).
TEST_LINE = re.compile(r"^\S+ (\S+) (succeeded|failed)(?: in [0-9.]+s)?(?: \(([^)]*)\))?\.$")

def tests(log: str) -> list[tuple[str, str, str]]:
    return [(m[1], m[2], m[3] or "ran") for m in map(TEST_LINE.match, log.splitlines()) if m]

runs = {}
for name in ("run1", "run2"):
    log = (work / name / "pants.log").read_text(errors="replace")
    runs[name] = (counters(log), tests(log), float((work / name / "seconds").read_text()))

c1, t1, s1 = runs["run1"]
c2, t2, s2 = runs["run2"]
lookups = c2.get("remote_cache_requests", 0)
hits = c2.get("remote_cache_requests_cached", 0)
misses = lookups - hits  # every lookup that did not serve its process
ratio = hits / lookups if lookups else 0.0
remote_tests = sum(1 for _, _, source in t2 if source == "cached remotely")
local_hits = c2.get("local_cache_requests_cached", 0)

print()
print("=== Remote cache demo (BuildGrid, REAPI) ===")
print(f"run 1 (empty caches, writes):  {s1:7.1f} s   {len(t1)} test targets, "
      f"{c1.get('remote_cache_write_successes', 0)} results written to the remote cache "
      f"({c1.get('remote_cache_write_errors', 0)} write errors)")
print(f"run 2 (new empty local caches): {s2:6.1f} s   {remote_tests}/{len(t2)} test targets "
      f"'cached remotely'")
print(f"remote lookups:  {lookups}")
print(f"remote hits:     {hits}")
print(f"remote misses:   {misses}  (not found {c2.get('remote_cache_requests_uncached', 0)}, "
      f"read errors {c2.get('remote_cache_read_errors', 0)}, "
      f"timeouts {c2.get('remote_cache_request_timeouts', 0)}, "
      f"local run won the race {c2.get('remote_cache_speculation_local_completed_first', 0)})")
print(f"hit ratio:       {ratio:.1%}  (hits / (hits + misses); required >= {min_percent:g}%)")
print(f"processes run locally in run 2: {c2.get('local_execution_requests', 0)}; "
      f"local cache hits: {local_hits}")
print(f"wall time:       run 1 {s1:.1f} s, run 2 {s2:.1f} s; run 2 / run 1 = {s2 / s1:.2f} "
      f"({s1 / s2:.1f}x faster)")

problems = []
if lookups == 0:
    problems.append("run 2 made no remote cache lookups")
if ratio * 100 < min_percent:
    problems.append(f"hit ratio {ratio:.1%} is below {min_percent:g}%")
if not t2 or remote_tests != len(t2):
    problems.append("not every test target of run 2 was 'cached remotely': "
                    + ", ".join(f"{addr} ({src})" for addr, _, src in t2 if src != "cached remotely"))
if local_hits:
    problems.append(f"run 2 had {local_hits} local cache hits: its local caches were not empty")
for problem in problems:
    print(f"FAIL: {problem}")
print("PASS" if not problems else "FAILED")
sys.exit(1 if problems else 0)
PY
}

main() {
  local venv
  venv="$(install_buildgrid)"
  work="$(mktemp -d "${TMPDIR:-/tmp}/meridian-cache-demo.XXXXXX")"
  commit="$(git -C "${repo_root}" rev-parse HEAD)"
  log "testing commit ${commit} (uncommitted changes are not part of the demo)"

  # Settings from the caller's environment (e.g. PANTS_CONFIG_FILES=pants.ci.toml in
  # CI) would change what is measured; PANTS_PYTHON only tells ./pants where Python is.
  local var
  for var in $(compgen -e); do
    if [[ "${var}" == PANTS_* && "${var}" != PANTS_PYTHON ]]; then
      unset "${var}"
    fi
  done

  port="$(free_port)"
  start_buildgrid "${venv}" "${port}"
  run_suite run1
  run_suite run2
  report
}

main "$@"
