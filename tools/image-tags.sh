#!/usr/bin/env bash
# The image tags and build metadata of the checked-out commit: one definition for make,
# Tilt and CI (the logic: tools/release/buildinfo.py).
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

case "${1:-}" in
  "" | --env) ;;
  -h | --help)
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
    exit 0
    ;;
  *)
    printf "image-tags: unknown argument '%s' (try --help)\n" "$1" >&2
    exit 1
    ;;
esac

cd "$(dirname "${BASH_SOURCE[0]}")/.."
python="$(command -v python3.11 || command -v python3)" ||
  { echo "image-tags: needs Python 3.11 or newer (python3.11 or python3 on PATH)" >&2; exit 1; }
exec "${python}" -m tools.release.buildinfo "$@"
