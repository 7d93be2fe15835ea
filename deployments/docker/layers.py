#!/usr/bin/env python3.11
"""Build-stage helper of Meridian's service Dockerfile: turns a service's PEXes into layers.

pycache and deps run in build stages of deployments/docker/Dockerfile, on the runtime
base image's own interpreter (standard library only; the image has no shell); srcs
runs in Pants, on the build machine's CPython 3.11 (see build-support/macros.py):

  pycache   check the Dockerfile being built is the workspace's (the standard library
            is bytecode in the base image already: /usr/lib/python311.zip)
  deps      the third-party PEX -> the /app venv (wheels, entry point), trimmed,
            shared objects stripped of debug info, every module's source replaced by
            its bytecode, and every top-level package imported once as a check
  srcs      the first-party PEX -> a layer tarball of the sources and their bytecode
            for /app, and etc/meridian/build.json: the service's name and source
            URL, nothing of the commit (a deployment injects that)

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
import stat
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

if not __package__:
    # Run as a script (in image builds, /build/deployments/docker/layers.py): the
    # modules it shares with the base image's build come from the tree it sits in.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from deployments.docker.elf import strip_elf
from deployments.docker.reprotar import write_tarball

EPOCH = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
STDLIB = Path("/usr/lib/python3.11")
SITE_PACKAGES = Path("lib/python3.11/site-packages")
# The pure-Python wheels, as bytecode in one zip that a .pth file puts on sys.path.
PURE_ZIP = Path("lib/python3.11/site-packages.zip")
PURE_ZIP_PTH = "meridian-site-packages-zip.pth"
# Every zip entry's timestamp: the format's earliest, for reproducible layers.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
SERVICE_USER = 65532
DOCKERFILE = "deployments/docker/Dockerfile"
# /etc/meridian/build.json key -> the environment variable it comes from. No revision,
# version or date: equal inputs must give an equal layer on every commit.
BUILD_INFO = {"source": "MERIDIAN_SOURCE_URL"}
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
# protobuf's C++ extension (upb) needs libstdc++ (2.2 MB), which the base leaves out;
# without it protobuf uses its pure-Python implementation, enough for what services use
# it for (their ServiceInfo, turned into /version's JSON once at start-up).
TRIM_PACKAGES = ("google/_upb",)

# Runs in the venv's interpreter: imports each module named on the command line, then
# records every module loaded: those imports' and the interpreter's own start-up ones.
IMPORTER = """\
import importlib, sys
failed = []
for name in sys.argv[2:]:
    try:
        importlib.import_module(name)
    except Exception as error:
        failed.append(f"{name}: {type(error).__name__}: {error}")
with open(sys.argv[1], "w") as sink:
    for module in list(sys.modules.values()):
        origin = getattr(getattr(module, "__spec__", None), "origin", None)
        if isinstance(origin, str):
            print(origin, file=sink)
for line in failed:
    print(line, file=sys.stderr)
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


def sourceless(tree: Path) -> tuple[int, int]:
    """Replace each module under `tree` by its bytecode, where its source was
    (module.pyc for module.py, which Python imports without a source).

    Nothing in an image rewrites the wheels, and nothing reads their sources but a
    traceback printing a line's text: it still names the file and line. The image
    carries each module once instead of twice, all of it compiled (also what the
    service imports only later), and a read-only root needs no bytecode cache.
    Returns (modules compiled, bytes of source removed).
    """
    for cache in [path for path in walk(tree) if path.name == "__pycache__"]:
        shutil.rmtree(cache)
    compileall.compile_dir(
        tree,
        quiet=2,
        workers=0,
        legacy=True,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    compiled = removed = 0
    for source in [path for path in walk(tree) if path.suffix == ".py" and path.is_file()]:
        if source.with_suffix(".pyc").is_file():
            compiled += 1
            removed += source.stat().st_size
            source.unlink()
    return compiled, removed


# --- commands ---------------------------------------------------------------------------


def command_pycache(args: argparse.Namespace) -> None:
    if args.dockerfile:
        check_dockerfile(*args.dockerfile)
    # The same for every service, so the builder shares this stage between them.
    compile_tree(STDLIB, args.prefix)
    print(f"pycache: compiled what {STDLIB} holds as sources into {args.prefix}")


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
    for package in TRIM_PACKAGES:
        shutil.rmtree(venv / SITE_PACKAGES / package, ignore_errors=True)
    dropped = drop_empty_distributions(venv / SITE_PACKAGES)
    saved = strip_shared_objects(venv / SITE_PACKAGES)
    compiled, removed = sourceless(venv / SITE_PACKAGES)
    names = top_level_modules(venv / SITE_PACKAGES)
    zipped = zip_pure_packages(venv / SITE_PACKAGES, venv / PURE_ZIP)
    normalise(venv)
    check_imports(venv, args.prefix, names)
    # The layer's tree holds /app itself, so that the builder copies /app's own mode and
    # mtime too instead of creating the directory at build time.
    out: Path = args.out / venv.relative_to("/")
    shutil.copytree(venv, out, symlinks=True)
    normalise(args.out)
    print(
        f"deps: stripped {saved / 1e6:.1f} MB from shared objects; {compiled} modules as "
        f"bytecode only ({removed / 1e6:.1f} MB of source left out); zipped {', '.join(zipped)}; "
        f"dropped {dropped or 'none'}"
    )


def check_dockerfile(workspace: Path, used: Path) -> None:
    if workspace.read_text().splitlines() != used.read_text().splitlines():
        raise LayerError(
            f"this image is being built from an outdated copy of {DOCKERFILE}: pantsd "
            "parsed the BUILD files before that file changed. Restart pantsd (end the "
            "process whose id is in .pids/*/pantsd/pid) and build again."
        )


def command_srcs(args: argparse.Namespace) -> None:
    """Lay out the first-party code as `pex venv --scope=srcs` would, without pex, and
    write it with the build metadata as a layer tarball.

    Pants runs this (adhoc_tool, see build-support/macros.py), so it is cached with its
    inputs and costs the image build one ADD instead of a build stage.
    """
    pex: Path = args.pex
    site_packages: Path = args.venv / SITE_PACKAGES
    with tempfile.TemporaryDirectory(prefix="srcs-") as scratch:
        root = Path(scratch)
        tree = root / site_packages.relative_to("/")
        tree.mkdir(parents=True)
        for entry in sorted(pex.iterdir()):
            if entry.name in PEX_RUNTIME:
                continue
            if entry.is_dir():
                ignore = shutil.ignore_patterns("__pycache__")
                shutil.copytree(entry, tree / entry.name, ignore=ignore)
            else:
                shutil.copy2(entry, tree / entry.name)
        trim(tree)
        sources = [path for path in walk(tree) if path.suffix == ".py" and path.is_file()]
        for path in sources:
            final = site_packages / path.relative_to(tree)
            # Checked against the source's hash, not trusted: a developer's live sync
            # of a .py file into a running container (Tilt) then takes effect.
            py_compile.compile(
                str(path),
                cfile=importlib.util.cache_from_source(str(path)),
                dfile=str(final),  # tracebacks name the file where the image has it
                invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
                doraise=True,
            )
        info = {"service": args.service}
        info.update((key, os.environ.get(variable, "")) for key, variable in BUILD_INFO.items())
        build_json = root / "etc/meridian/build.json"
        build_json.parent.mkdir(parents=True)
        build_json.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        normalise(root)
        write_layer(root, args.out)
        if args.dev_out:
            # Tilt's live_update, running as the service user, replaces these files.
            write_layer(root, args.dev_out, owned_by_service=tree.relative_to(root))
    print(f"srcs: {len(sources)} first-party modules; build {info}")


def write_layer(root: Path, out: Path, owned_by_service: Path | None = None) -> None:
    """The tree as a tarball that extracts to the same layer every time (ADD unpacks it
    as it is): owned by root or, below `owned_by_service`, by the service user."""

    def owner(relative: str) -> int:
        below = owned_by_service is not None and owned_by_service in Path(relative).parents
        return SERVICE_USER if below else 0

    write_tarball(root, out, EPOCH, owner)


def top_level_modules(site_packages: Path) -> list[str]:
    """The importable top-level modules and packages the wheels install; for a namespace
    package (google), the regular packages inside it (google.protobuf)."""
    names = []
    for entry in sorted(site_packages.iterdir()):
        name = entry.name.split(".", 1)[0]
        if not name.isidentifier() or name.startswith("__"):
            continue  # *.dist-info, __pycache__, pex's __main__.py
        if entry.is_dir():
            if (entry / "__init__.py").is_file():
                names.append(name)
            else:
                names.extend(
                    f"{name}.{child.name}"
                    for child in sorted(entry.iterdir())
                    if (child / "__init__.py").is_file()
                )
        elif entry.suffix in (".py", ".so"):
            names.append(name)
    return names


def record_imports(venv: Path, prefix: Path, names: Sequence[str]) -> list[Path]:
    with tempfile.TemporaryDirectory(prefix="imports-") as scratch:
        record = Path(scratch) / "modules.txt"
        # The flags of the venv's own #! line; bytecode comes from the build cache and
        # none is written.
        python = [str(venv / "bin/python3.11"), "-sE", "-B", "-X", f"pycache_prefix={prefix}"]
        result = subprocess.run(
            [*python, "-c", IMPORTER, str(record), *names],
            env={"PATH": "/usr/bin", "LANG": "C.UTF-8"},
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0 or not record.is_file():
            raise LayerError(f"importing the third-party packages failed:\n{result.stderr}")
        for line in result.stderr.splitlines():
            print(f"deps: warning: cannot import {line}")
        return sorted({Path(line) for line in record.read_text().splitlines()})


def check_imports(venv: Path, prefix: Path, names: Sequence[str]) -> None:
    """Import every top-level package of the wheels in the venv as the image has it
    (bytecode only, the pure ones from the zip): a wheel that cannot load fails here."""
    modules = record_imports(venv, prefix, names)
    print(f"deps: importing {len(names)} third-party packages loads {len(modules)} modules")


def zip_pure_packages(site_packages: Path, archive: Path) -> list[str]:
    """Move the top-level packages made of bytecode alone (no extension module, no data
    file but the py.typed marker) into one deflated zip, which a .pth file puts on
    sys.path; returns their names. Extension modules cannot load from a zip, and data
    files may be opened by path, so packages with either stay files."""
    pure = []
    for entry in sorted(site_packages.iterdir()):
        if (
            entry.is_file()
            and entry.suffix == ".pyc"
            and entry.stem.isidentifier()
            or (
                entry.is_dir()
                and (entry / "__init__.pyc").is_file()
                and all(
                    path.is_dir() or path.suffix == ".pyc" or path.name == "py.typed"
                    for path in walk(entry)
                )
            )
        ):
            pure.append(entry)
    with zipfile.ZipFile(archive, "w") as bundle:
        for entry in pure:
            for path in [entry] if entry.is_file() else [p for p in walk(entry) if p.is_file()]:
                info = zipfile.ZipInfo(path.relative_to(site_packages).as_posix(), ZIP_EPOCH)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                bundle.writestr(info, path.read_bytes(), compresslevel=9)
    for entry in pure:
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    (site_packages / PURE_ZIP_PTH).write_text(f"/{archive.relative_to('/')}\n")
    return [entry.name.removesuffix(".pyc") for entry in pure]


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    pycache = commands.add_parser("pycache", help="compile the standard library into a cache")
    pycache.add_argument("prefix", type=Path, help="the cache (like PYTHONPYCACHEPREFIX)")
    pycache.add_argument(
        "--dockerfile",
        nargs=2,
        type=Path,
        metavar=("WORKSPACE", "USED"),
        help="fail unless the Dockerfile being built is the workspace's",
    )
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
    srcs.add_argument("out", type=Path, help="the sources layer, a tarball")
    srcs.add_argument("--service", required=True, help="the service's name, for build.json")
    srcs.add_argument(
        "--dev-out",
        type=Path,
        help="also the dev image's layer: packages owned by the service user",
    )
    srcs.set_defaults(handler=command_srcs)

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
