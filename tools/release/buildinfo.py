"""Image tags and build metadata of a checkout (tools/image-tags.sh's logic).

Tags: the short commit SHA (`<sha>-dirty` for a tree with uncommitted or untracked
changes), plus `X.Y.Z` and `vX.Y.Z` when a clean HEAD carries a release tag. The build
metadata (`MERIDIAN_BUILD_*`, `MERIDIAN_SOURCE_URL`) is what make, Tilt and the image
build pass on; every value is a valid image tag or label and safe to `eval`.

Run as `python3 -m tools.release.buildinfo [--env]` (what tools/image-tags.sh runs): on
its own, so that what builds images depends on this module and not on the whole release
command line.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tools.release.errors import ReleaseError
from tools.release.process import run

SHA_LENGTH = 12
# SemVer 2.0 without build metadata: '+' is not allowed in an image tag.
RELEASE_TAG = re.compile(r"^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$")
_SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@([^:/]+):(.+)$")
_SSH_OR_GIT = re.compile(r"^(ssh|git)://([^@/]+@)?([^/:]+)(:[0-9]+)?")
_CREDENTIALS = re.compile(r"^https?://[^@/]+@")
_SAFE_URL = re.compile(r"^https://[A-Za-z0-9._~/:-]+$")


@dataclass(frozen=True)
class BuildInfo:
    revision: str
    version: str
    build_date: str
    source_url: str
    release_tag: str | None

    def tags(self) -> list[str]:
        if self.release_tag is None:
            return [self.revision]
        return [self.revision, self.version, self.release_tag]

    def env(self) -> dict[str, str]:
        return {
            "MERIDIAN_BUILD_VERSION": self.version,
            "MERIDIAN_BUILD_REVISION": self.revision,
            "MERIDIAN_BUILD_DATE": self.build_date,
            "MERIDIAN_SOURCE_URL": self.source_url,
        }


def _git(repo: Path, *args: str) -> str:
    return run(["git", *args], cwd=repo).strip()


def _version_key(tag: str) -> tuple[int, ...]:
    match = RELEASE_TAG.match(tag)
    if match is None:
        raise ReleaseError(f"{tag!r} is not a release tag vX.Y.Z[-pre]")
    return tuple(int(part) for part in match.groups()[:3])


def highest_release(tags: list[str]) -> str | None:
    """The highest release tag; a final release outranks its own pre-releases."""
    releases = [tag for tag in tags if RELEASE_TAG.match(tag)]
    if not releases:
        return None
    finals = [tag for tag in releases if "-" not in tag]
    if finals:
        return max(finals, key=_version_key)
    return max(releases, key=lambda tag: (_version_key(tag), tag))


def https_source_url(remote: str) -> str:
    """The origin remote as an https URL without credentials, or '' if it is not one."""
    url = remote.removesuffix(".git")
    scp = _SCP_LIKE.match(url)
    if scp:
        url = f"https://{scp.group(1)}/{scp.group(2)}"
    url = _SSH_OR_GIT.sub(lambda m: f"https://{m.group(3)}", url)
    url = _CREDENTIALS.sub("https://", url)
    url = url.replace("http://", "https://", 1) if url.startswith("http://") else url
    return url if _SAFE_URL.match(url) else ""


def read(repo: Path, source_date_epoch: str | None = None) -> BuildInfo:
    """Build metadata of the checkout at repo, as it is on disk."""
    try:
        _git(repo, "rev-parse", "--verify", "--quiet", "HEAD")
    except ReleaseError:
        raise ReleaseError(
            f"{repo} is not a git checkout with a commit; set MERIDIAN_BUILD_* yourself"
        ) from None
    sha = _git(repo, "rev-parse", f"--short={SHA_LENGTH}", "HEAD")
    # Untracked files count: Pants builds whatever is in the tree. No optional locks: a
    # status check must not rewrite the index under a concurrent git.
    dirty = bool(_git(repo, "--no-optional-locks", "status", "--porcelain"))
    release = None
    if not dirty:
        release = highest_release(_git(repo, "tag", "--points-at", "HEAD").split())
    revision = f"{sha}-dirty" if dirty else sha
    if release is not None:
        version = release.removeprefix("v")
    else:
        version = f"0.0.0-dev.g{sha}" + (".dirty" if dirty else "")
    if source_date_epoch:
        try:
            epoch = int(source_date_epoch)
        except ValueError:
            raise ReleaseError(
                f"SOURCE_DATE_EPOCH={source_date_epoch!r} is not a number of seconds since 1970"
            ) from None
        moment = datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC)
    elif dirty:
        moment = datetime.datetime.now(tz=datetime.UTC)
    else:
        # The commit's own date: building the same commit twice gives the same metadata.
        moment = datetime.datetime.fromtimestamp(
            int(_git(repo, "show", "-s", "--format=%ct", "HEAD")), tz=datetime.UTC
        )
    try:
        remote = _git(repo, "remote", "get-url", "origin")
    except ReleaseError:
        remote = ""
    return BuildInfo(
        revision=revision,
        version=version,
        build_date=moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        source_url=https_source_url(remote) if remote else "",
        release_tag=release,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tools/image-tags.sh", description="image tags of the checkout, one a line"
    )
    parser.add_argument("--env", action="store_true", help="print MERIDIAN_BUILD_* KEY=value lines")
    args = parser.parse_args(argv)
    try:
        info = read(Path(__file__).resolve().parents[2], os.environ.get("SOURCE_DATE_EPOCH"))
    except ReleaseError as error:
        print(f"image-tags: {error}", file=sys.stderr)
        return 1
    if args.env:
        print("\n".join(f"{key}={value}" for key, value in info.env().items()))
    else:
        print("\n".join(info.tags()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
