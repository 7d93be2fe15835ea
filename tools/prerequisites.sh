#!/usr/bin/env bash
# Checks (and on Debian/Ubuntu as root, installs) what Meridian's build and local
# stack need from the host: CPython 3.9 for Pants, CPython 3.11 for the services,
# PostgreSQL server binaries, Redis, git, a local registry for the image checks, and
# kubectl for the manifest checks. Everything else comes from lockfiles; the container
# engine comes from tools/images/engine.sh.
#
# Usage: tools/prerequisites.sh [--check]   (--check only reports, exit 1 if missing)
# Each prerequisite is reported on its own line, found or missing.
set -euo pipefail

check_only=false
[[ "${1:-}" == "--check" ]] && check_only=true

missing_packages=()
missing_text=()

found_text=()

found() {  # found NAME WHERE
  found_text+=("$(printf '  ok       %-16s %s' "$1" "$2")")
}

need() {  # need COMMAND DEBIAN_PACKAGE DESCRIPTION [BREW_PACKAGE]
  if command -v "$1" >/dev/null 2>&1; then
    found "$1" "$(command -v "$1")"
    return
  fi
  missing_packages+=("$2")
  missing_text+=("  missing  $1 ($3): apt-get install $2 / brew install ${4:-$2}")
}

has_python() {  # has_python MINOR: prints where
  command -v "python3.$1" >/dev/null 2>&1 && "python3.$1" -c 'pass' 2>/dev/null &&
    command -v "python3.$1" && return 0
  compgen -G "${HOME}/.pyenv/versions/3.$1*/bin/python3.$1" | sed -n 1p | grep . && return 0
  return 1
}

python_version() {  # python_version MINOR DESCRIPTION HOW
  local where
  if where="$(has_python "$1")"; then
    found "python3.$1" "${where}"
  else
    missing_text+=("  missing  python3.$1 ($2): $3")
  fi
}

need git git "version control"
need make make "task runner"
need initdb postgresql "PostgreSQL server, stands in for CockroachDB locally" postgresql@15
need postgres postgresql "PostgreSQL server" postgresql@15
need psql postgresql-client "PostgreSQL client" libpq
need redis-server redis-server "Redis server" redis
need openssl openssl "certificates for the TLS tests" openssl
need docker-registry docker-registry "local registry, for the image checks" distribution
python_version 11 "services and tests" "pyenv install 3.11 / apt-get install python3.11"
python_version 9 "runs Pants 2.17" "pyenv install 3.9 / brew install python@3.9"
# Not in Debian's archive: installed pinned by tools/install-dev-tools.sh.
if command -v kubectl >/dev/null 2>&1; then
  found kubectl "$(command -v kubectl)"
else
  found_text+=("  missing  kubectl (optional: the manifest checks and Tilt need it): tools/install-dev-tools.sh")
fi

report() {
  printf '%s\n' "${found_text[@]}" ${missing_text[@]+"${missing_text[@]}"} >&2
}

if [[ ${#missing_text[@]} -eq 0 ]]; then
  ${check_only} && report
  exit 0
fi

can_apt=false
if ! ${check_only} && command -v apt-get >/dev/null 2>&1 && [[ ${#missing_packages[@]} -gt 0 ]]; then
  if [[ "$(id -u)" == 0 ]]; then
    can_apt=true
    sudo=()
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    can_apt=true
    sudo=(sudo)
  fi
fi

if ${can_apt}; then
  echo "Installing missing packages: ${missing_packages[*]}" >&2
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing_packages[@]}" >/dev/null
  # Debian keeps PostgreSQL's server binaries off PATH; link the newest into it.
  if ! command -v initdb >/dev/null 2>&1; then
    bin_dir="$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -1)"
    for tool in initdb postgres pg_ctl; do
      "${sudo[@]}" ln -sf "${bin_dir}/${tool}" "/usr/local/bin/${tool}"
    done
  fi
  # Redis is started by Meridian's tooling on its own ports, not as a system service.
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet redis-server 2>/dev/null; then
    "${sudo[@]}" systemctl disable --now redis-server >/dev/null 2>&1 || true
  fi
  exec "$0" --check
fi

echo "Meridian needs what is missing here:" >&2
report
exit 1
