#!/usr/bin/env bash
# Installs the pinned tools for Meridian's local Kubernetes workflow (Tiltfile):
# tilt, kubectl and kind, on Linux or macOS, amd64 or arm64.
#
#   tools/install-dev-tools.sh [--dir DIR] [--force]
#
# DIR defaults to $MERIDIAN_TOOLS_DIR or ~/.local/bin. Every download is checked
# against the sha256 pinned below; a mismatch aborts before anything is installed.
# To upgrade a tool, change its version and all of its sha256 lines together, taken
# from the vendor's published checksums for that release.
set -euo pipefail

TILT_VERSION=0.37.7
KUBECTL_VERSION=1.32.13
KIND_VERSION=0.32.0

sha256_of() {
  case "$1" in
    tilt-linux-amd64) echo b695193fab68def8310cb971fa60bbe47ba0a782e24f54ebad287c13316a61b0 ;;
    tilt-darwin-amd64) echo 2022e675f9a32cdc651e8096a12caa38720be2d692d7347798607873a107fd61 ;;
    tilt-darwin-arm64) echo 7f54afff29cae67e2751c13df00a66d56f6fbc4463573089059ba673cf128687 ;;
    kubectl-linux-amd64) echo db2ae479a63f3665d7f704ab18c0d4d4050144237980763221835b7305703c4c ;;
    kubectl-linux-arm64) echo b1f87f196633a89208546d79bfa4e2470bda70e7bf42c4d3adb008ec208da9d1 ;;
    kubectl-darwin-amd64) echo 925e89bdf7e30d9a356625b3b368b93261300cdee6c053935eb50ed9e657e769 ;;
    kubectl-darwin-arm64) echo 97c78912825a83e91c67fdae588a5a26dec53d58370210c78612dec04a71fc21 ;;
    kind-linux-amd64) echo 50030de23cf40a18505f20426f6a8506bedf13c6e509244bd1fa9463721b0f54 ;;
    kind-linux-arm64) echo b92cd615e97585de8ddade28ed5cd7feb4248d717c233eea5b03c37298900f5d ;;
    kind-darwin-amd64) echo 295ac6d0d634c9819c9907df45e3017d1f13166bd13c3404c45e79f7faa47498 ;;
    kind-darwin-arm64) echo dca67911095a110c2b5c36e26df6cac860c602033e456c0db47be498cdef1ebb ;;
    # tilt-linux-arm64: not pinned yet; add it from the release's checksums.txt.
    *) return 1 ;;
  esac
}

die() {
  echo "install-dev-tools: $*" >&2
  exit 1
}

usage() {
  sed -n '2,11s/^# \{0,1\}//p' "$0"
}

dir="${MERIDIAN_TOOLS_DIR:-$HOME/.local/bin}"
force=false
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) [ $# -ge 2 ] || die "--dir needs a value"; dir="$2"; shift 2 ;;
    --force) force=true; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

case "$(uname -s)" in
  Linux) os=linux ;;
  Darwin) os=darwin ;;
  *) die "unsupported OS $(uname -s): only Linux and macOS are supported" ;;
esac
case "$(uname -m)" in
  x86_64 | amd64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) die "unsupported CPU $(uname -m): only amd64 and arm64 are supported" ;;
esac

if command -v curl >/dev/null 2>&1; then
  fetch() { curl -fsSL --retry 3 --proto '=https' -o "$2" "$1"; }
elif command -v wget >/dev/null 2>&1; then
  fetch() { wget -q --tries=3 -O "$2" "$1"; }
else
  die "neither curl nor wget is installed"
fi
if command -v sha256sum >/dev/null 2>&1; then
  sha256() { sha256sum "$1" | cut -d' ' -f1; }
elif command -v shasum >/dev/null 2>&1; then
  sha256() { shasum -a 256 "$1" | cut -d' ' -f1; }
else
  die "neither sha256sum nor shasum is installed"
fi

mkdir -p "$dir" || die "cannot create $dir"
[ -w "$dir" ] || die "$dir is not writable (choose another with --dir)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# download TOOL URL FILE: fetch URL into FILE and check it against TOOL's pin.
download() {
  local want got
  want="$(sha256_of "$1-$os-$arch")" || die "no pinned sha256 for $1 on $os/$arch; add one to $0"
  echo "downloading $2"
  fetch "$2" "$3" || die "download failed: $2"
  got="$(sha256 "$3")"
  [ "$got" = "$want" ] || die "sha256 mismatch for $2: expected $want, got $got"
}

# installed TOOL VERSION COMMAND...: true if TOOL in $dir already reports VERSION.
installed() {
  local tool="$1" version="$2"
  shift 2
  [ "$force" = false ] && [ -x "$dir/$tool" ] &&
    "$dir/$tool" "$@" 2>/dev/null | grep -Eq "v${version//./\\.}([^0-9]|\$)"
}

place() {
  chmod 0755 "$1"
  mv -f "$1" "$dir/$2"
  echo "installed $dir/$2"
}

if installed tilt "$TILT_VERSION" version; then
  echo "tilt $TILT_VERSION already installed"
else
  tilt_os="$os"; [ "$os" = darwin ] && tilt_os=mac
  tilt_arch="$arch"; [ "$arch" = amd64 ] && tilt_arch=x86_64
  asset="tilt.$TILT_VERSION.$tilt_os.$tilt_arch.tar.gz"
  download tilt "https://github.com/tilt-dev/tilt/releases/download/v$TILT_VERSION/$asset" "$work/$asset"
  tar -xzf "$work/$asset" -C "$work" tilt || die "unexpected contents in $asset"
  place "$work/tilt" tilt
fi

if installed kubectl "$KUBECTL_VERSION" version --client; then
  echo "kubectl $KUBECTL_VERSION already installed"
else
  download kubectl "https://dl.k8s.io/release/v$KUBECTL_VERSION/bin/$os/$arch/kubectl" "$work/kubectl"
  place "$work/kubectl" kubectl
fi

if installed kind "$KIND_VERSION" version; then
  echo "kind $KIND_VERSION already installed"
else
  download kind "https://github.com/kubernetes-sigs/kind/releases/download/v$KIND_VERSION/kind-$os-$arch" "$work/kind"
  place "$work/kind" kind
fi

case ":$PATH:" in
  *":$dir:"*) ;;
  *) echo "note: $dir is not on PATH; add it, e.g. export PATH=\"$dir:\$PATH\"" ;;
esac
echo "next: kind create cluster --name meridian && tilt up"
