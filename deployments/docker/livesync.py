#!/usr/bin/python3.11 -I
"""The `tar` and `rm` of a service's dev image, for Tilt's live_update.

Tilt copies changed files into a running container by executing `tar -C / -x -f -`
in it with a tar archive on stdin, and deletes files with `rm -rf PATH...`. Meridian's
images have neither program (no shell, no coreutils), so the dev image (the `dev`
stage of deployments/docker/Dockerfile) links both names to this file, which does
what Tilt asks of them with the standard library:

  tar -C DIR -x -f -|/dev/stdin   extract the archive on stdin under DIR
  rm [-r] [-f] [--] PATH...       remove files (and directories with -r)

Extraction replaces each file atomically (the service's reload watcher never sees a
half-written module) and leaves existing directories as they are: they belong to
root, and the service user may only write inside its own packages.

At image build time, `livesync.py install BIN` creates the two links in BIN. The dev
image's sources layer gives the first-party packages to the service user, so that it
may replace their files.
"""

from __future__ import annotations

import os
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import IO

TOOLS = ("tar", "rm")
# GNU tar's exit status for a fatal error, which Tilt reports as such.
TAR_FATAL = 2


class UsageError(Exception):
    """An argument this stand-in does not support; the message says which."""


# --- tar -------------------------------------------------------------------------------


def parse_tar_args(argv: Sequence[str]) -> tuple[Path, str]:
    """The directory and archive of `tar -C DIR -x -f ARCHIVE`, in any order."""
    directory, archive, extract = Path("."), "", False
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg in ("-C", "--directory") and args:
            directory = Path(args.pop(0))
        elif arg in ("-f", "--file") and args:
            archive = args.pop(0)
        elif arg in ("-x", "--extract"):
            extract = True
        elif arg.startswith("-") and not arg.startswith("--") and set(arg[1:]) <= {"x", "f"}:
            extract = extract or "x" in arg  # -xf ARCHIVE
            if "f" in arg:
                if not args:
                    raise UsageError(f"{arg} needs an archive")
                archive = args.pop(0)
        else:
            raise UsageError(f"unsupported argument {arg!r} (supported: -C DIR -x -f -)")
    if not extract or archive not in ("-", "/dev/stdin"):
        raise UsageError("only extraction from stdin is supported: tar -C DIR -x -f -")
    return directory, archive


def member_path(root: Path, name: str) -> Path:
    """Where a member goes under root; never outside it."""
    relative = PurePosixPath(name)
    if relative.is_absolute() or ".." in relative.parts:
        raise UsageError(f"refusing {name!r}: it points outside {root}")
    return root.joinpath(*relative.parts)


def write_file(target: Path, content: IO[bytes], member: tarfile.TarInfo) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, scratch = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(handle, "wb") as sink:
            shutil.copyfileobj(content, sink)
        os.chmod(scratch, member.mode & 0o777)
        os.utime(scratch, (member.mtime, member.mtime))
        os.replace(scratch, target)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise


def extract(root: Path, stream: tarfile.TarFile) -> int:
    count = 0
    for member in stream:
        target = member_path(root, member.name)
        if member.isdir():
            if not target.is_dir():
                target.mkdir(parents=True, mode=member.mode & 0o777)
        elif member.isfile():
            content = stream.extractfile(member)
            if content is None:
                raise UsageError(f"{member.name!r} has no content")
            write_file(target, content, member)
        elif member.issym():
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink() or target.exists():
                target.unlink()
            target.symlink_to(member.linkname)
        else:
            raise UsageError(f"refusing {member.name!r}: only files, directories, symlinks")
        count += 1
    return count


def tar_main(argv: Sequence[str]) -> int:
    try:
        directory, _ = parse_tar_args(argv)
        with tarfile.open(fileobj=sys.stdin.buffer, mode="r|*") as stream:
            extract(directory, stream)
    except (UsageError, OSError, tarfile.TarError) as error:
        print(f"tar: {error}", file=sys.stderr)
        return TAR_FATAL
    return 0


# --- rm --------------------------------------------------------------------------------


def rm_main(argv: Sequence[str]) -> int:
    recursive = force = False
    args = list(argv)
    while args and args[0].startswith("-") and args[0] != "-":
        arg = args.pop(0)
        if arg == "--":
            break
        if not set(arg[1:]) <= {"r", "R", "f"}:
            print(f"rm: unsupported option {arg!r} (supported: -r -f)", file=sys.stderr)
            return 1
        recursive = recursive or bool(set(arg[1:]) & {"r", "R"})
        force = force or "f" in arg
    status = 0
    for name in args:
        path = Path(name)
        try:
            if path.is_dir() and not path.is_symlink():
                if not recursive:
                    raise IsADirectoryError(f"{name} is a directory (use -r)")
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:
            if not force:
                print(f"rm: {name}: no such file or directory", file=sys.stderr)
                status = 1
        except OSError as error:
            print(f"rm: {name}: {error}", file=sys.stderr)
            status = 1
    return status


# --- install (image build time) -------------------------------------------------------


def install(bin_dir: Path) -> None:
    this = Path(__file__).resolve()
    this.chmod(0o755)
    bin_dir.mkdir(parents=True, exist_ok=True)
    for tool in TOOLS:
        link = bin_dir / tool
        link.unlink(missing_ok=True)
        link.symlink_to(this)


def main(argv: Sequence[str]) -> int:
    program = Path(argv[0]).name
    if program == "tar":
        return tar_main(argv[1:])
    if program == "rm":
        return rm_main(argv[1:])
    if len(argv) == 3 and argv[1] == "install":
        install(Path(argv[2]))
        print(f"livesync: {' and '.join(TOOLS)} in {argv[2]}")
        return 0
    print(__doc__, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
