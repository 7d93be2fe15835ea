#!/usr/bin/env python3.11
"""Meridian's runtime base root filesystem, assembled from pinned Debian 12 packages.

  lock    pin every package named in packages.txt to apt's candidate version
          (exact version, archive path and sha256) in packages.lock
  build   download the locked .debs (cached by sha256, verified), extract them, trim
          everything a Python service does not need and write a deterministic tarball
  verify  check a built tarball (no shell, every shared library and interpreter
          resolves, CA bundle present) and run a Python smoke test in it under chroot

Standard library only, so it runs on a bare Debian host before any Meridian tooling
is installed. It needs `apt-get`/`apt-cache` (lock), `dpkg-deb` (build) and `tar` plus
`chroot` as root (verify).
"""

from __future__ import annotations

import argparse
import os
import sys
import tarfile
import tempfile
import time
import zlib
from collections.abc import Sequence
from pathlib import Path

if not __package__:
    # Run as a script: the modules it is made of are imported from the repository root.
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from deployments.docker.base.assemble import (
    MERIDIAN_ID,
    PYTHON,
    add_meridian_files,
    extract,
    merge_usr,
    trim,
    write_ca_bundle,
)
from deployments.docker.base.checks import check
from deployments.docker.base.debian import (
    lock_text,
    read_lock,
    read_package_names,
    resolve_lock,
)
from deployments.docker.base.download import fetch
from deployments.docker.base.host import (
    RootfsError,
    run,
    sha256_of,
    write_atomically,
)
from deployments.docker.base.stdlib import zip_stdlib
from deployments.docker.reprotar import TarballError, write_tarball

HERE = Path(__file__).resolve().parent
PACKAGES_FILE = HERE / "packages.txt"
LOCK_FILE = HERE / "packages.lock"
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "meridian/debs"
# Plain HTTP is what apt itself uses here: integrity comes from the sha256 in the lock,
# which apt took from the signed archive metadata.
DEFAULT_MIRROR = "http://deb.debian.org/{archive}/"

# Entries owned by the service user; everything else in the tarball is root's.
OWNERS = {"home/meridian": MERIDIAN_ID}


def owner(relative: str) -> int:
    return OWNERS.get(relative, 0)


SMOKE_TEST = """
import _decimal, asyncio, bz2, ctypes, decimal, json, lzma, mimetypes, os, pwd, ssl, sys
import tempfile, uuid, zlib, zoneinfo

assert pwd.getpwuid(os.getuid()).pw_name == "meridian", os.getuid()
cas = ssl.create_default_context().cert_store_stats()["x509_ca"]
assert cas > 100, f"only {cas} CA certificates loaded"
assert ctypes.CDLL("libc.so.6").getpid() == os.getpid()
assert lzma.decompress(lzma.compress(b"x")) == bz2.decompress(bz2.compress(b"x")) == b"x"
assert str(decimal.Decimal("0.1") + decimal.Decimal("0.2")) == "0.3"
assert zoneinfo.ZoneInfo("Europe/London").key == "Europe/London"
assert uuid.uuid1().version == 1 and json.loads("[1]") == [1]
assert mimetypes.guess_type("a.json")[0] == "application/json"
assert asyncio.run(asyncio.sleep(0, result="ok")) == "ok"
with tempfile.TemporaryFile() as scratch:
    scratch.write(zlib.compress(b"tmp is writable"))
for program in ("/bin/sh", "/usr/bin/sh", "/bin/bash", "/usr/bin/dash"):
    assert not os.path.lexists(program), program
print(sys.version.split()[0], ssl.OPENSSL_VERSION, f"{cas} CA certificates", sep=" | ")
"""


def megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


def command_lock(args: argparse.Namespace) -> None:
    names = read_package_names(args.packages)
    if args.update:
        # --error-on=any: a list apt could not fetch fails the lock instead of leaving
        # it to pin from stale lists.
        run(["apt-get", "update", "-qq", "--error-on=any"])
    old = {p.package: p.version for p in read_lock(args.lock)} if args.lock.is_file() else {}
    packages = resolve_lock(names)
    write_atomically(args.lock, lock_text(packages).encode())
    for package in packages:
        before = old.get(package.package)
        change = "" if before == package.version else f"  (was {before or 'absent'})"
        print(f"{package.package:24} {package.version}{change}")
    print(f"wrote {args.lock} ({len(packages)} packages)")


def gzipped_size(path: Path) -> int:
    """Size after gzip -6, the level container tools use for layers."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            size += len(compressor.compress(chunk))
    return size + len(compressor.flush())


def report(tarball: Path) -> int:
    """Print sizes and the largest paths; return the uncompressed file content size."""
    with tarfile.open(tarball) as tar:
        members = tar.getmembers()
    files = sorted((m for m in members if m.isreg()), key=lambda m: (-m.size, m.name))
    content = sum(member.size for member in files)
    print(f"{tarball}: {len(members)} entries, sha256 {sha256_of(tarball)}")
    print(f"  files {megabytes(content)} uncompressed ({content} bytes)")
    print(
        f"  tarball {megabytes(tarball.stat().st_size)}, gzip -6 {megabytes(gzipped_size(tarball))}"
    )
    print("  largest paths:")
    for member in files[:10]:
        print(f"    {member.size / 1_000_000:6.2f} MB  /{member.name}")
    return content


def command_build(args: argparse.Namespace) -> None:
    started = time.monotonic()
    os.umask(0o022)
    packages = read_lock(args.lock)
    stale = set(read_package_names(args.packages)) ^ {p.package for p in packages}
    if stale:
        names = ", ".join(sorted(stale))
        raise RootfsError(f"{args.lock} is out of date for {names}; run `rootfs.py lock`")
    debs = [(package, fetch(package, args.cache_dir, args.mirror)) for package in packages]
    with tempfile.TemporaryDirectory(prefix="meridian-rootfs-") as scratch:
        root = Path(scratch) / "rootfs"
        extract(root, debs)
        merge_usr(root)
        write_ca_bundle(root)
        trim(root)
        modules = zip_stdlib(root)
        print(f"standard library: {modules} modules compiled into /usr/lib/python311.zip")
        add_meridian_files(root)
        check(root)
        write_tarball(root, args.output, args.source_date_epoch, owner)
    report(args.output)
    print(f"built in {time.monotonic() - started:.1f} s")


# --- verify ---------------------------------------------------------------------------


def command_verify(args: argparse.Namespace) -> None:
    content = report(args.tarball)
    if content > args.max_mb * 1_000_000:
        raise RootfsError(f"{megabytes(content)} is over the {args.max_mb} MB budget")
    with tempfile.TemporaryDirectory(prefix="meridian-rootfs-verify-") as scratch:
        root = Path(scratch)
        root.chmod(0o755)  # as an image root is; the service user must traverse it
        # tar as root keeps modes (1777 /tmp) and numeric owners exactly as built.
        run(["tar", "--extract", "--numeric-owner", "-f", str(args.tarball), "-C", scratch])
        check(root)
        print("  static checks passed: no shell, every interpreter and library resolves")
        if args.run:
            env = {"PATH": "/usr/bin", "HOME": "/home/meridian", "LANG": "C.UTF-8"}
            userspec = f"--userspec={MERIDIAN_ID}:{MERIDIAN_ID}"
            output = run(["chroot", userspec, scratch, PYTHON, "-I", "-c", SMOKE_TEST], env=env)
            print(f"  smoke test as uid {MERIDIAN_ID} under chroot: {output.strip()}")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    lock = commands.add_parser("lock", help="pin packages.txt to apt's candidates")
    lock.add_argument("--packages", type=Path, default=PACKAGES_FILE)
    lock.add_argument("--lock", type=Path, default=LOCK_FILE)
    lock.add_argument(
        "--no-update", dest="update", action="store_false", help="skip `apt-get update`"
    )
    lock.set_defaults(handler=command_lock)

    build = commands.add_parser("build", help="write the root filesystem tarball")
    build.add_argument(
        "--output", type=Path, required=True, help="tarball to write, e.g. dist/rootfs.tar"
    )
    build.add_argument("--packages", type=Path, default=PACKAGES_FILE)
    build.add_argument("--lock", type=Path, default=LOCK_FILE)
    build.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    build.add_argument("--mirror", default=DEFAULT_MIRROR, help="URL template with {archive}")
    build.add_argument(
        "--source-date-epoch",
        type=int,
        default=int(os.environ.get("SOURCE_DATE_EPOCH", "0")),
        help="mtime of every entry (default: $SOURCE_DATE_EPOCH or 0)",
    )
    build.set_defaults(handler=command_build)

    verify = commands.add_parser("verify", help="check a tarball and smoke-test it under chroot")
    verify.add_argument("tarball", type=Path)
    verify.add_argument("--max-mb", type=float, default=35.0, help="budget for uncompressed files")
    verify.add_argument("--no-run", dest="run", action="store_false", help="skip the chroot test")
    verify.set_defaults(handler=command_verify)
    return parser.parse_args(argv)


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    try:
        args.handler(args)
    except (RootfsError, TarballError) as error:
        print(f"rootfs: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
