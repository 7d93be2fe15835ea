#!/usr/bin/env python3.11
"""Build-stage helper of Meridian's service Dockerfile: turns a service's PEXes into layers.

Each command runs in a build stage of deployments/docker/Dockerfile, on the runtime
base image's own interpreter (standard library only; the image has no shell):

  pycache   compile the whole standard library into a build-only bytecode cache
  deps      the third-party PEX -> the /app venv (wheels, entry point), trimmed,
            shared objects stripped of debug info; its modules join the cache
  srcs      the first-party PEX -> a tree of sources and their bytecode for /app
  bytecode  start the service once, record every module it imports, and copy the
            cached bytecode of the standard-library and third-party ones into a tree
  build-info  the build metadata (MERIDIAN_* build arguments) as etc/meridian/build.json

Every tree written for the image is reproducible: fixed mtimes (SOURCE_DATE_EPOCH,
default 0), normalised modes, bytecode keyed by source hash instead of mtime. Equal
inputs give equal layers, which the builder's cache and registries then share.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import importlib.util
import json
import os
import py_compile
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

EPOCH = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
STDLIB = Path("/usr/lib/python3.11")
SITE_PACKAGES = Path("lib/python3.11/site-packages")
DOCKERFILE = "deployments/docker/Dockerfile"
# /etc/meridian/build.json key -> the build argument (environment variable) it comes from.
BUILD_INFO = {
    "service": "MERIDIAN_SERVICE",
    "version": "MERIDIAN_BUILD_VERSION",
    "revision": "MERIDIAN_BUILD_REVISION",
    "date": "MERIDIAN_BUILD_DATE",
    "source": "MERIDIAN_SOURCE_URL",
}
# What a PEX holds besides its first-party code (pex's own list for `venv --scope=srcs`).
PEX_RUNTIME = frozenset(
    {"__main__.py", "__pex__", "__pycache__", ".bootstrap", ".deps", "PEX-INFO", "PEX-LAYOUT"}
)

# Files the running service never reads. Type stubs serve type checkers, Cython
# sources and declarations its compiler (tracebacks still name the .pyx file and line),
# and the activate scripts need a shell the image lacks.
TRIM_SUFFIXES = (".pyi", ".pyx", ".pxd", ".pxi")
TRIM_DIR_SUFFIXES = ("-stubs",)
TRIM_BIN = ("activate", "activate.csh", "activate.fish", "Activate.ps1")

# Settings under which any Meridian service starts without its backing services:
# well-formed addresses of ports nothing listens on (connections are refused at once).
RECORDING_ENV = {
    "DATABASE_URL": "postgresql://meridian@127.0.0.1:1/meridian",
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
    "HOST": "127.0.0.1",
    "LOG_LEVEL": "WARNING",
    "SHUTDOWN_GRACE_SECONDS": "1",
}
# Requests a freshly started pod gets; answering them imports what the first
# probes and scrape would otherwise import lazily.
RECORDING_PATHS = ("/health/startup", "/health/live", "/health/ready", "/metrics", "/version")
# Runs inside the service's interpreter. It imports nothing (atexit and sys are built
# in), so every module it records is one the service itself imported.
RECORDER = """\
import atexit, sys
def _record():
    with open({out!r}, "w") as sink:
        for module in list(sys.modules.values()):
            origin = getattr(getattr(module, "__spec__", None), "origin", None)
            if isinstance(origin, str):
                print(origin, file=sink)
atexit.register(_record)
sys.argv[0] = {main!r}
with open({main!r}) as source:
    code = compile(source.read(), {main!r}, "exec")
exec(code, {{"__name__": "__main__", "__file__": {main!r}}})
"""


class LayerError(Exception):
    """A failure with a message that says what to fix; main() prints it plainly."""


# --- reproducible trees ---------------------------------------------------------------


def walk(root: Path) -> Iterator[Path]:
    """Every path under root (root excluded), sorted, parents before their children."""
    for directory, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(directory)
        for name in sorted(filenames):
            yield base / name
        for name in dirnames:
            yield base / name


def normalise(root: Path) -> None:
    """Fix modes and mtimes, so that the tree's layer depends on its content alone."""
    for path in [root, *walk(root)]:
        status = path.lstat()
        if stat.S_ISDIR(status.st_mode):
            path.chmod(0o755)
        elif stat.S_ISREG(status.st_mode):
            # Readable by the unprivileged service user; executables stay executable.
            path.chmod(0o755 if status.st_mode & 0o111 else 0o644)
        os.utime(path, (EPOCH, EPOCH), follow_symlinks=False)


def trim(root: Path) -> None:
    for path in list(walk(root)):
        if not path.is_symlink() and not path.exists():
            continue  # inside a directory removed earlier in this loop
        if path.is_dir() and not path.is_symlink() and path.name.endswith(TRIM_DIR_SUFFIXES):
            shutil.rmtree(path)
        elif path.is_file() and path.suffix in TRIM_SUFFIXES:
            path.unlink()


def drop_empty_distributions(site_packages: Path) -> list[str]:
    """Remove the metadata of distributions trim() left without a file (stub-only ones),
    so that SBOMs and importlib.metadata do not list what is not there."""
    dropped = []
    for dist_info in sorted(site_packages.glob("*.dist-info")):
        record = dist_info / "RECORD"
        if not record.is_file():
            continue
        files = [line.split(",", 1)[0] for line in record.read_text().splitlines() if line]
        payload = [name for name in files if not name.startswith(f"{dist_info.name}/")]
        if payload and not any((site_packages / name).exists() for name in payload):
            shutil.rmtree(dist_info)
            dropped.append(dist_info.name)
    return dropped


# --- ELF -------------------------------------------------------------------------------

ELF64_LE = b"\x7fELF\x02\x01"
SECTION = struct.Struct("<IIQQQQIIQQ")  # Elf64_Shdr
SEGMENT = struct.Struct("<IIQQQQQQ")  # Elf64_Phdr
SHT_NULL, SHT_NOBITS = 0, 8
SHF_ALLOC = 0x2


def strip_elf(data: bytes) -> bytes | None:
    """The file without its unloaded sections (as `strip` does), or None to keep it as is.

    Wheels on PyPI often ship extension modules with full DWARF debug info (7 of the
    8 MB of asyncpg's protocol module). The dynamic loader reads only the program
    headers and the segments they map. Linkers put every loaded section first and the
    rest (comments, debug info, static symbol table) after them, after the last mapped
    byte: those are dropped, except the section-name table, which moves up to follow
    the mapped bytes, and the section header table is written after it. The loaded
    sections keep their indices, so no reference to them changes. A file laid out any
    other way is left alone.
    """
    if not data.startswith(ELF64_LE):
        return None
    phoff, shoff = struct.unpack_from("<QQ", data, 0x20)
    phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from("<HHHHH", data, 0x36)
    if shoff == 0 or shnum == 0 or shentsize != SECTION.size or phentsize != SEGMENT.size:
        return None
    mapped_end = phoff + phnum * phentsize
    for index in range(phnum):
        segment = SEGMENT.unpack_from(data, phoff + index * phentsize)
        mapped_end = max(mapped_end, segment[2] + segment[5])  # p_offset + p_filesz
    sections = [list(SECTION.unpack_from(data, shoff + i * shentsize)) for i in range(shnum)]
    loaded = [i for i, header in enumerate(sections) if header[2] & SHF_ALLOC]
    if not loaded:
        return None
    last_loaded = max(loaded)
    kept = sections[: last_loaded + 1]
    tail = range(last_loaded + 1, shnum)
    names = sections[shstrndx]
    if (
        shstrndx not in tail
        or len(tail) < 2  # nothing but the section names to drop
        or any(not header[2] & SHF_ALLOC and header[1] != SHT_NULL for header in kept[1:])
        or any(header[6] > last_loaded for header in kept)  # sh_link into the tail
        or any(sections[i][4] < mapped_end and sections[i][1] != SHT_NOBITS for i in tail)
    ):
        return None
    out = bytearray(data[:mapped_end])
    out.extend(b"\0" * (-len(out) % max(names[8], 1)))
    offset, size = names[4], names[5]
    names[4] = len(out)
    out.extend(data[offset : offset + size])
    out.extend(b"\0" * (-len(out) % 8))
    struct.pack_into("<Q", out, 0x28, len(out))  # e_shoff
    struct.pack_into("<HH", out, 0x3C, len(kept) + 1, len(kept))  # e_shnum, e_shstrndx
    for header in [*kept, names]:
        out.extend(SECTION.pack(*header))
    return bytes(out)


def strip_shared_objects(root: Path) -> int:
    saved = 0
    for path in walk(root):
        if path.suffix == ".so" and path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            stripped = strip_elf(data)
            if stripped is not None:
                path.write_bytes(stripped)
                saved += len(data) - len(stripped)
    return saved


# --- bytecode ---------------------------------------------------------------------------


@contextlib.contextmanager
def pycache_prefix(prefix: Path) -> Iterator[None]:
    """Bytecode paths under `prefix` (like PYTHONPYCACHEPREFIX) instead of __pycache__."""
    previous = sys.pycache_prefix
    sys.pycache_prefix = str(prefix)
    try:
        yield
    finally:
        sys.pycache_prefix = previous


def cached_pyc(source: Path, prefix: Path) -> Path:
    """Where the build-only cache under `prefix` keeps `source`'s bytecode."""
    with pycache_prefix(prefix):
        return Path(importlib.util.cache_from_source(str(source)))


def compile_tree(tree: Path, prefix: Path) -> None:
    """Compile every module under `tree` into the cache, in parallel.

    Nothing in an image rewrites the standard library or the wheels, so their bytecode
    is unchecked: the interpreter loads it without reading or hashing the source.
    """
    with pycache_prefix(prefix):
        compileall.compile_dir(
            tree,
            quiet=2,
            workers=0,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )


# --- commands ---------------------------------------------------------------------------


def command_pycache(args: argparse.Namespace) -> None:
    # The same for every service, so the builder shares this stage between them.
    compile_tree(STDLIB, args.prefix)
    print(f"pycache: compiled {STDLIB} into {args.prefix}")


def command_deps(args: argparse.Namespace) -> None:
    venv: Path = args.venv
    with tempfile.TemporaryDirectory(prefix="pex-root-") as pex_root:
        # A throwaway PEX_ROOT: nothing pex caches ends up in a layer. The PEX carries
        # the entry point, so this also writes the venv's __main__.py and `pex` launcher.
        env = {"PATH": "/usr/bin", "PEX_TOOLS": "1", "PEX_ROOT": pex_root, "LANG": "C.UTF-8"}
        command = [sys.executable, str(args.pex), "venv", "--scope=all", str(venv)]
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LayerError(f"`pex venv` failed:\n{result.stderr.strip()}")
    for name in TRIM_BIN:
        (venv / "bin" / name).unlink(missing_ok=True)
    trim(venv)
    dropped = drop_empty_distributions(venv / SITE_PACKAGES)
    saved = strip_shared_objects(venv / SITE_PACKAGES)
    normalise(venv)
    compile_tree(venv / SITE_PACKAGES, args.prefix)
    # The layer's tree holds /app itself, so that the builder copies /app's own mode and
    # mtime too instead of creating the directory at build time.
    out: Path = args.out / venv.relative_to("/")
    shutil.copytree(venv, out, symlinks=True)
    normalise(args.out)
    print(f"deps: stripped {saved / 1e6:.1f} MB from shared objects; dropped {dropped or 'none'}")


def check_dockerfile(workspace: Path, used: Path) -> None:
    if workspace.read_text().splitlines() != used.read_text().splitlines():
        raise LayerError(
            f"this image is being built from an outdated copy of {DOCKERFILE}: pantsd "
            "parsed the BUILD files before that file changed. Restart pantsd (end the "
            "process whose id is in .pids/*/pantsd/pid) and build again."
        )


def command_srcs(args: argparse.Namespace) -> None:
    """Lay out the first-party code as `pex venv --scope=srcs` would, without pex."""
    if args.dockerfile:
        check_dockerfile(*args.dockerfile)
    pex: Path = args.pex
    site_packages: Path = args.venv / SITE_PACKAGES
    tree: Path = args.out / site_packages.relative_to("/")
    tree.mkdir(parents=True)
    for entry in sorted(pex.iterdir()):
        if entry.name in PEX_RUNTIME:
            continue
        if entry.is_dir():
            shutil.copytree(entry, tree / entry.name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(entry, tree / entry.name)
    trim(tree)
    sources = [path for path in walk(tree) if path.suffix == ".py" and path.is_file()]
    for path in sources:
        final = site_packages / path.relative_to(tree)
        # Checked against the source's hash, not trusted: a developer's live sync of a
        # .py file into a running container (Tilt) then takes effect.
        py_compile.compile(
            str(path),
            cfile=importlib.util.cache_from_source(str(path)),
            dfile=str(final),  # tracebacks name the file where the image has it
            invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
            doraise=True,
        )
    normalise(args.out)
    print(f"srcs: {len(sources)} first-party modules")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code


def wait_until_live(
    service: subprocess.Popen[bytes], base_url: str, timeout: float, log: Path
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.poll() is not None:
            raise LayerError(f"the service exited with {service.returncode}:\n{log.read_text()}")
        with contextlib.suppress(OSError):
            if get(f"{base_url}/health/live") == 200:
                return
        time.sleep(0.05)
    raise LayerError(f"the service did not answer /health/live within {timeout:.0f} s")


def record_imports(venv: Path, prefix: Path, timeout: float) -> list[Path]:
    """Start the service, send it a new pod's first requests, stop it: what it imported."""
    main = venv / "pex"
    with tempfile.TemporaryDirectory(prefix="imports-") as scratch:
        record, log = Path(scratch) / "modules.txt", Path(scratch) / "service.log"
        port = free_port()
        env = {"PATH": "/usr/bin", "LANG": "C.UTF-8", "PORT": str(port), **RECORDING_ENV}
        code = RECORDER.format(out=str(record), main=str(main))
        # The flags of the venv's own #! line; bytecode comes from the build cache (fast,
        # so this takes about as long as a real start) and none is written.
        python = [str(venv / "bin/python3.11"), "-sE", "-B", "-X", f"pycache_prefix={prefix}"]
        with (
            log.open("w") as sink,
            subprocess.Popen([*python, "-c", code], env=env, stdout=sink, stderr=sink) as service,
        ):
            try:
                wait_until_live(service, f"http://127.0.0.1:{port}", timeout, log)
                for path in RECORDING_PATHS:
                    get(f"http://127.0.0.1:{port}{path}")
            finally:
                service.send_signal(signal.SIGTERM)
                try:
                    service.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    service.kill()
        if service.returncode != 0 or not record.is_file():
            raise LayerError(
                f"the service stopped with {service.returncode} and recorded no imports:\n"
                + log.read_text()
            )
        return sorted({Path(line) for line in record.read_text().splitlines()})


def command_bytecode(args: argparse.Namespace) -> None:
    out: Path = args.out
    modules = record_imports(args.venv, args.prefix, args.timeout)
    # The cache holds the standard library and the wheels, never first-party code.
    copied = {"stdlib": 0, "third-party": 0}
    for path in modules:
        cached = cached_pyc(path, args.prefix)
        if path.suffix != ".py" or not cached.is_file():
            continue
        target = out / Path(importlib.util.cache_from_source(str(path))).relative_to("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cached, target)
        copied["stdlib" if path.is_relative_to(STDLIB) else "third-party"] += 1
    normalise(out)
    print(
        f"bytecode: {len(modules)} modules imported at start-up; bytecode for "
        f"{copied['stdlib']} standard-library and {copied['third-party']} third-party ones"
    )


def command_build_info(args: argparse.Namespace) -> None:
    info = {key: os.environ.get(variable, "") for key, variable in BUILD_INFO.items()}
    path: Path = args.out / "etc/meridian/build.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    normalise(args.out)
    print(f"build-info: {info}")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    pycache = commands.add_parser("pycache", help="compile the standard library into a cache")
    pycache.add_argument("prefix", type=Path, help="the cache (like PYTHONPYCACHEPREFIX)")
    pycache.set_defaults(handler=command_pycache)

    deps = commands.add_parser("deps", help="install the third-party PEX as a venv")
    deps.add_argument("pex", type=Path)
    deps.add_argument("venv", type=Path)
    deps.add_argument("prefix", type=Path, help="the bytecode cache to add the wheels to")
    deps.add_argument("out", type=Path, help="tree for the deps layer")
    deps.set_defaults(handler=command_deps)

    srcs = commands.add_parser("srcs", help="lay out and compile the first-party PEX")
    srcs.add_argument("pex", type=Path)
    srcs.add_argument("venv", type=Path, help="the venv the sources are for")
    srcs.add_argument("out", type=Path, help="tree for the sources layer")
    srcs.add_argument(
        "--dockerfile",
        nargs=2,
        type=Path,
        metavar=("WORKSPACE", "USED"),
        help="fail unless the Dockerfile being built is the workspace's",
    )
    srcs.set_defaults(handler=command_srcs)

    bytecode = commands.add_parser("bytecode", help="collect what the service imports")
    bytecode.add_argument("venv", type=Path)
    bytecode.add_argument("prefix", type=Path, help="the bytecode cache")
    bytecode.add_argument("out", type=Path, help="tree for the bytecode layer")
    bytecode.add_argument("--timeout", type=float, default=60.0)
    bytecode.set_defaults(handler=command_bytecode)

    build_info = commands.add_parser("build-info", help="write the build metadata as JSON")
    build_info.add_argument("out", type=Path, help="tree for the build-info layer")
    build_info.set_defaults(handler=command_build_info)
    return parser.parse_args(argv)


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    try:
        args.handler(args)
    except LayerError as error:
        print(f"layers {args.command}: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
