#!/usr/bin/env bash
# The image tags and build metadata of the checked-out commit: one definition for make,
# Tilt and CI.
#
#   tools/image-tags.sh         tags, one a line:
#                                 <sha>            short commit SHA (12 hex digits), always
#                                 <sha>-dirty      instead, when the tree has uncommitted or
#                                                  untracked changes (what Pants would build)
#                                 X.Y.Z, vX.Y.Z    when HEAD is exactly on a vX.Y.Z tag and
#                                                  clean (vX.Y.Z-rc.N pre-releases too)
#   tools/image-tags.sh --env   KEY=value lines for the image build arguments, e.g.
#                                 set -a; eval "$(tools/image-tags.sh --env)"; set +a
#                               MERIDIAN_BUILD_VERSION   X.Y.Z on a release tag, else
#                                                        0.0.0-dev.g<sha>[.dirty]
#                               MERIDIAN_BUILD_REVISION  <sha> or <sha>-dirty
#                               MERIDIAN_BUILD_DATE      committer date of HEAD (UTC, ISO 8601),
#                                                        or now for a dirty tree;
#                                                        $SOURCE_DATE_EPOCH wins if set
#                               MERIDIAN_SOURCE_URL      the origin remote as an https URL
#
# Every value is a valid image tag or label and safe to eval.
set -euo pipefail

readonly sha_length=12
# SemVer 2.0 without build metadata: '+' is not allowed in an image tag.
readonly release_tag='^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$'

die() {
  printf 'image-tags: %s\n' "$*" >&2
  exit 1
}

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
}

mode="tags"
case "${1:-}" in
  "") ;;
  --env) mode="env" ;;
  -h | --help)
    usage
    exit 0
    ;;
  *) die "unknown argument '$1' (try --help)" ;;
esac

cd "$(dirname "${BASH_SOURCE[0]}")/.."
git rev-parse --verify --quiet HEAD >/dev/null ||
  die "$(pwd) is not a git checkout with a commit; set MERIDIAN_BUILD_* yourself"

sha="$(git rev-parse --short="${sha_length}" HEAD)"
# Untracked files count: Pants builds whatever is in the tree.
dirty=false
# --no-optional-locks: a status check must not rewrite the index under a concurrent git.
[[ -n "$(git --no-optional-locks status --porcelain)" ]] && dirty=true

# The highest release tag on HEAD; a final release outranks its pre-releases (which
# `sort -V` alone would put after it).
release=""
if ! ${dirty}; then
  tags="$(git tag --points-at HEAD | grep -E "${release_tag}" || true)"
  release="$(grep -v -- - <<<"${tags}" | sort -V | tail -n1 || true)"
  [[ -n "${release}" ]] || release="$(sort -V <<<"${tags}" | tail -n1)"
fi

revision="${sha}"
${dirty} && revision="${sha}-dirty"

if [[ -n "${release}" ]]; then
  version="${release#v}"
elif ${dirty}; then
  version="0.0.0-dev.g${sha}.dirty"
else
  version="0.0.0-dev.g${sha}"
fi

if [[ -n "${SOURCE_DATE_EPOCH:-}" ]]; then
  # GNU date, else BSD date (macOS).
  build_date="$(date -u -d "@${SOURCE_DATE_EPOCH}" +%Y-%m-%dT%H:%M:%SZ 2>/dev/null ||
    date -u -r "${SOURCE_DATE_EPOCH}" +%Y-%m-%dT%H:%M:%SZ)"
elif ${dirty}; then
  build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
else
  # The commit's own date: building the same commit twice gives the same metadata.
  build_date="$(TZ=UTC git show -s --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ HEAD)"
fi

source_url() {
  local url
  url="$(git remote get-url origin 2>/dev/null)" || return 0
  url="${url%.git}"
  if [[ "${url}" =~ ^[A-Za-z0-9._-]+@([^:/]+):(.+)$ ]]; then # scp-like git@host:owner/repo
    url="https://${BASH_REMATCH[1]}/${BASH_REMATCH[2]}"
  fi
  # No credentials; an ssh or git port means nothing to https.
  url="$(sed -E -e 's#^(ssh|git)://([^@/]+@)?([^/:]+)(:[0-9]+)?#https://\3#' \
    -e 's#^https?://[^@/]+@#https://#' -e 's#^http://#https://#' <<<"${url}")"
  # Only what is safe in a label and in `eval`; anything else (a local path) is left out.
  [[ "${url}" =~ ^https://[A-Za-z0-9._~/:-]+$ ]] && printf '%s' "${url}"
  return 0
}

if [[ "${mode}" == env ]]; then
  printf 'MERIDIAN_BUILD_VERSION=%s\n' "${version}"
  printf 'MERIDIAN_BUILD_REVISION=%s\n' "${revision}"
  printf 'MERIDIAN_BUILD_DATE=%s\n' "${build_date}"
  printf 'MERIDIAN_SOURCE_URL=%s\n' "$(source_url)"
else
  printf '%s\n' "${revision}"
  if [[ -n "${release}" ]]; then
    printf '%s\n' "${version}" "${release}"
  fi
fi
