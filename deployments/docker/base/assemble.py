"""The base root filesystem's tree: the locked packages extracted into a merged /usr,
a CA bundle, the service user, and nothing a Python service does not need."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from deployments.docker.base.debian import LockedPackage
from deployments.docker.base.host import RootfsError, run

PYTHON = "/usr/bin/python3.11"
PYLIB = "usr/lib/python3.11"
LIBDIR = "usr/lib/x86_64-linux-gnu"
CA_BUNDLE = "etc/ssl/certs/ca-certificates.crt"
MERIDIAN_ID = 65532

# Paths (globs relative to the root) removed after extraction, grouped by reason.
TRIM_GLOBS: tuple[str, ...] = (
    # Manuals, lintian overrides and bug-report hooks: nobody reads them in a container.
    "usr/share/man",
    "usr/share/info",
    "usr/share/lintian",
    "usr/share/bug",
    "usr/share/locale",
    # Maintainer helpers and shell dotfiles: there is no shell to run them.
    "usr/sbin/update-ca-certificates",
    "etc/ca-certificates",
    "etc/update-motd.d",
    "etc/profile.d",
    "etc/skel",
    "usr/share/base-files",
    # Already consumed at build time: the CA bundle is concatenated from these.
    "usr/share/ca-certificates",
    # binfmt_misc registration and gcc/gdb pretty-printers.
    "usr/lib/binfmt.d",
    "usr/share/binfmts",
    "usr/share/gcc",
    "usr/share/gdb",
    # glibc's iconv modules (8 MB): CPython's codecs do not use iconv.
    f"{LIBDIR}/gconv",
    # glibc's vector maths library: nothing here links it and manylinux wheels may not.
    f"{LIBDIR}/libmvec.so.*",
    # expat's wide-character build: CPython links the UTF-8 libexpat.
    f"{LIBDIR}/libexpatw.so.*",
    # tzdata's leap-second "right/" zones: not POSIX time, zoneinfo never offers them.
    "usr/share/zoneinfo/right",
    # Empty FHS directories a service never uses.
    "boot",
    "usr/games",
    "usr/include",
    "usr/src",
    "usr/share/dict",
    "usr/share/misc",
    "var/backups",
    "var/local",
    # Python: IDE, GUI, demos, 2to3, pydoc topics and test suites.
    f"{PYLIB}/idlelib",
    f"{PYLIB}/tkinter",
    f"{PYLIB}/turtledemo",
    f"{PYLIB}/turtle.py",
    f"{PYLIB}/pydoc_data",
    f"{PYLIB}/lib2to3",
    f"{PYLIB}/test",
    f"{PYLIB}/__phello__",
    f"{PYLIB}/lib-dynload/_test*",
    f"{PYLIB}/lib-dynload/_ctypes_test.*",
    f"{PYLIB}/lib-dynload/_xxtestfuzz.*",
    f"{PYLIB}/lib-dynload/xxlimited*",
    # Development tools that no service runs: test frameworks, debugger, doc browser,
    # pickle disassembler, and the pure-Python decimal that _decimal replaces.
    f"{PYLIB}/unittest",
    f"{PYLIB}/doctest.py",
    f"{PYLIB}/pdb.py",
    f"{PYLIB}/pydoc.py",
    f"{PYLIB}/pickletools.py",
    f"{PYLIB}/_pydecimal.py",
    # Audio devices and formats: no sound in a service container.
    f"{PYLIB}/lib-dynload/audioop.*",
    f"{PYLIB}/lib-dynload/ossaudiodev.*",
    # East Asian multibyte codecs (1 MB): every Meridian interface is UTF-8. Looking up
    # one of these encodings fails cleanly with LookupError.
    f"{PYLIB}/lib-dynload/_codecs_*",
    f"{PYLIB}/lib-dynload/_multibytecodec.*",
    *(
        f"{PYLIB}/encodings/{name}.py"
        for name in ("big5*", "cp932", "cp949", "cp950", "euc_*", "gb*", "hz", "iso2022_*")
    ),
    *(f"{PYLIB}/encodings/{name}.py" for name in ("johab", "shift_jis*")),
    # Modules whose libraries are deliberately not installed (see packages.txt).
    f"{PYLIB}/sqlite3",
    f"{PYLIB}/lib-dynload/_sqlite3.*",
    f"{PYLIB}/curses",
    f"{PYLIB}/lib-dynload/_curses*",
    f"{PYLIB}/lib-dynload/readline.*",
    f"{PYLIB}/lib-dynload/_dbm.*",
    f"{PYLIB}/lib-dynload/nis.*",
    f"{PYLIB}/lib-dynload/_crypt.*",
)

PASSWD = (
    "root:x:0:0:root:/root:/usr/sbin/nologin\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    f"meridian:x:{MERIDIAN_ID}:{MERIDIAN_ID}:meridian:/home/meridian:/usr/sbin/nologin\n"
)
GROUP = f"root:x:0:\nnogroup:x:65534:\nmeridian:x:{MERIDIAN_ID}:\n"
# Without this file glibc asks DNS before /etc/hosts; containers rely on /etc/hosts.
NSSWITCH = (
    "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\n"
    "protocols: files\nservices: files\nethers: files\nrpc: files\n"
)


def extract(root: Path, debs: Sequence[tuple[LockedPackage, Path]]) -> None:
    # A status.d entry per package (as distroless images have) lets image scanners
    # such as trivy and syft see exact Debian versions without a dpkg database.
    status_dir = root / "var/lib/dpkg/status.d"
    status_dir.mkdir(parents=True)
    for package, deb in debs:
        run(["dpkg-deb", "--extract", str(deb), str(root)])
        control = run(["dpkg-deb", "--field", str(deb)])
        (status_dir / package.package).write_text(control)


def real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def move_tree(source: Path, target: Path) -> None:
    for entry in sorted(source.iterdir()):
        destination = target / entry.name
        if real_dir(entry) and real_dir(destination):
            move_tree(entry, destination)
            entry.rmdir()
        elif not os.path.lexists(destination):
            entry.rename(destination)
        else:
            raise RootfsError(f"merged /usr: {entry.name} exists in both {source} and {target}")


def merge_usr(root: Path) -> None:
    # Bookworm's packages still ship /lib and /bin paths; a Debian 12 system has them
    # merged into /usr with top-level symlinks (the dynamic loader is /lib64/... ).
    for name in ("bin", "sbin", "lib", "lib64"):
        top, usr = root / name, root / "usr" / name
        usr.mkdir(mode=0o755, parents=True, exist_ok=True)
        if real_dir(top):
            move_tree(top, usr)
            top.rmdir()
        top.symlink_to(f"usr/{name}")


def write_ca_bundle(root: Path) -> None:
    # What update-ca-certificates would produce, without its shell/openssl dependencies.
    certificates = sorted((root / "usr/share/ca-certificates/mozilla").glob("*.crt"))
    if not certificates:
        raise RootfsError("ca-certificates shipped no Mozilla certificates")
    pems = [path.read_bytes() for path in certificates]
    bundle = b"".join(pem if pem.endswith(b"\n") else pem + b"\n" for pem in pems)
    install_file(root, CA_BUNDLE, bundle)


def remove(path: Path) -> None:
    if real_dir(path):
        shutil.rmtree(path)
    else:
        path.unlink()


def trim(root: Path) -> None:
    for pattern in TRIM_GLOBS:
        for path in sorted(root.glob(pattern)):
            remove(path)
    # Each package's copyright file stays: the licenses travel with the binaries.
    for package_docs in sorted((root / "usr/share/doc").iterdir()):
        if real_dir(package_docs):
            for path in sorted(package_docs.iterdir()):
                if path.name != "copyright":
                    remove(path)


def install_file(root: Path, relative: str, content: bytes, mode: int = 0o644) -> None:
    path = root / relative
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    path.write_bytes(content)
    path.chmod(mode)


def install_dir(root: Path, relative: str, mode: int) -> None:
    path = root / relative
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)  # explicit: mkdir's mode is filtered by the umask


def install_symlink(root: Path, relative: str, target: str) -> None:
    path = root / relative
    if real_dir(path):
        path.rmdir()  # base-files ships /var/run and /var/lock as empty directories
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    path.symlink_to(target)


def add_meridian_files(root: Path) -> None:
    install_file(root, "etc/passwd", PASSWD.encode())
    install_file(root, "etc/group", GROUP.encode())
    install_file(root, "etc/nsswitch.conf", NSSWITCH.encode())
    install_file(root, "etc/timezone", b"Etc/UTC\n")
    install_symlink(root, "etc/localtime", "/usr/share/zoneinfo/Etc/UTC")
    install_dir(root, "home/meridian", 0o755)
    install_dir(root, "tmp", 0o1777)
    install_dir(root, "run/lock", 0o1777)
    install_symlink(root, "var/run", "/run")
    install_symlink(root, "var/lock", "/run/lock")
    install_symlink(root, "usr/bin/python3", "python3.11")
    # libssl3's OPENSSLDIR is /usr/lib/ssl; the `openssl` package (not installed) would
    # otherwise provide these links to the system trust store.
    install_symlink(root, "usr/lib/ssl/certs", "/etc/ssl/certs")
    install_symlink(root, "usr/lib/ssl/cert.pem", f"/{CA_BUNDLE}")
