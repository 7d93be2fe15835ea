"""The standard library as bytecode in one zip: /usr/lib/python311.zip.

The interpreter puts that zip first on sys.path, so every pure-Python standard module
loads from it: compiled bytecode, deflated. The sources are not shipped (a traceback
still names each file and line, without the line's text), and the read-only image
needs no bytecode cache: the image carries the library in about a third of what its
sources and their bytecode took. Extension modules (lib-dynload) stay files, and so
does os.py, the landmark by which the interpreter finds its standard library.

The bytecode is compiled by the image's own interpreter (run through the tree's own
dynamic loader, no chroot or root needed), so it is exactly what that CPython writes.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from deployments.docker.base.assemble import LIBDIR, PYLIB, PYTHON
from deployments.docker.base.host import RootfsError, run

STDLIB_ZIP = "usr/lib/python311.zip"
LOADER = f"{LIBDIR}/ld-linux-x86-64.so.2"
# The interpreter's landmark for its prefix (getpath): stays a source file on disk.
LANDMARK = "os.py"
# Not the standard library's: extension modules and third-party directories.
KEPT_DIRS = ("lib-dynload", "site-packages", "dist-packages")
# Fixed for reproducibility: every entry's timestamp is the zip format's earliest.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)

# Run by the tree's interpreter: legacy (sourceless) bytecode beside each source, named
# in tracebacks by where the image has it; unchecked, as no source is there to check.
COMPILE = """
import compileall, py_compile, re, sys
skip = re.compile(r"/(lib-dynload|site-packages|dist-packages)/")
ok = compileall.compile_dir(
    sys.argv[1], ddir=sys.argv[2], rx=skip, legacy=True, quiet=1, workers=1,
    invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
)
sys.exit(0 if ok else 1)
"""


def compile_stdlib(root: Path) -> None:
    interpreter = [str(root / LOADER), "--library-path", str(root / LIBDIR), str(root / PYTHON[1:])]
    try:
        run(
            [*interpreter, "-S", "-B", "-c", COMPILE, str(root / PYLIB), f"/{PYLIB}"],
            env={"PYTHONHOME": str(root / "usr"), "LANG": "C.UTF-8", "PATH": "/usr/bin"},
        )
    except RootfsError as error:
        raise RootfsError(f"compiling the standard library failed: {error}") from None


def zip_stdlib(root: Path) -> int:
    """Moves the standard library's bytecode into the zip and removes its sources;
    returns how many modules the zip holds."""
    library = root / PYLIB
    compile_stdlib(root)
    modules = sorted(
        path
        for path in library.rglob("*.pyc")
        if path.relative_to(library).parts[0] not in KEPT_DIRS
    )
    if not any(path.name == "encodings" for path in library.iterdir()):
        raise RootfsError(f"/{PYLIB} has no encodings package: not a standard library")
    with zipfile.ZipFile(root / STDLIB_ZIP, "w") as archive:
        for path in modules:
            info = zipfile.ZipInfo(path.relative_to(library).as_posix(), ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes(), compresslevel=9)
            path.unlink()
            if path.relative_to(library).as_posix() != LANDMARK.replace(".py", ".pyc"):
                path.with_suffix(".py").unlink()
    for directory in sorted(library.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if directory.is_dir() and not directory.is_symlink() and not any(directory.iterdir()):
            directory.rmdir()
    return len(modules)
