#!/usr/bin/env bash
# Checks (and on Debian/Ubuntu as root, installs) what Meridian's build and local
# stack need from the host: CPython 3.9 for Pants, CPython 3.11 for the services,
# PostgreSQL server binaries, Redis and git. Everything else comes from lockfiles.
#
# Usage: tools/prerequisites.sh [--check]   (--check only reports, exit 1 if missing)
set -euo pipefail

check_only=false
[[ "${1:-}" == "--check" ]] && check_only=true

missing_packages=()
missing_text=()

need() {  # need COMMAND DEBIAN_PACKAGE DESCRIPTION
  command -v "$1" >/dev/null 2>&1 && return
  missing_packages+=("$2")
  missing_text+=("  - $1 ($3): apt-get install $2 / brew install ${4:-$2}")
}

has_python() {  # has_python MINOR
  command -v "python3.$1" >/dev/null 2>&1 && "python3.$1" -c 'pass' 2>/dev/null && return 0
  compgen -G "${HOME}/.pyenv/versions/3.$1*/bin/python3.$1" >/dev/null && return 0
  return 1
}

need git git "version control"
need make make "task runner"
need initdb postgresql "PostgreSQL server, stands in for CockroachDB locally" postgresql@15
need postgres postgresql "PostgreSQL server" postgresql@15
need psql postgresql-client "PostgreSQL client" libpq
need redis-server redis-server "Redis server" redis
has_python 11 || missing_text+=("  - python3.11 (services and tests): pyenv install 3.11 / apt-get install python3.11")
has_python 9 || missing_text+=("  - python3.9 (runs Pants 2.17): pyenv install 3.9 / brew install python@3.9")

if [[ ${#missing_text[@]} -eq 0 ]]; then
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
    bin_dir="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
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

echo "Meridian needs these on the host:" >&2
printf '%s\n' "${missing_text[@]}" >&2
exit 1
