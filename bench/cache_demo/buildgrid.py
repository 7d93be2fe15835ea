"""A throwaway BuildGrid REAPI cache server on 127.0.0.1, from a hash-pinned venv."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.cache_demo.errors import DemoError
from bench.cache_demo.log import log

# BuildGrid 0.4.4 needs Python >= 3.11, and requirements.txt was compiled for 3.11.
PYTHON_VERSION = (3, 11)
# buildgrid.conf expands these when BuildGrid loads it.
PORT_VARIABLE = "MERIDIAN_REMOTE_CACHE_PORT"
STORAGE_VARIABLE = "MERIDIAN_REMOTE_CACHE_DIR"
# Only the pinned, hash-checked wheels: the machine's pip config (constraints, extra
# indexes, find-links) is kept out, both as files and as PIP_* variables.
PIP_VARIABLES_DROPPED = ("PIP_CONSTRAINT", "PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL")
START_TIMEOUT_SECONDS = 60.0
# BuildGrid drains for a few seconds on SIGTERM; it is killed if it takes longer.
STOP_TIMEOUT_SECONDS = 10.0
LOG_LINES_ON_FAILURE = 20


@dataclass(frozen=True)
class ServerFiles:
    requirements: Path
    config: Path


def python_candidates(home: Path) -> list[str]:
    minor = ".".join(map(str, PYTHON_VERSION))
    found = [sys.executable]
    found += [path for path in (shutil.which(f"python{minor}"), shutil.which("python3")) if path]
    found += [
        str(path) for path in sorted(home.glob(f".pyenv/versions/{minor}.*/bin/python{minor}"))
    ]
    return found


def find_python(candidates: Sequence[str]) -> str:
    minor = ".".join(map(str, PYTHON_VERSION))
    # Prints the version only if venv imports too (Debian splits it into python3.X-venv).
    probe = "import sys, venv; print(*sys.version_info[:2])"
    for candidate in candidates:
        if not os.access(candidate, os.X_OK):
            continue
        answer = subprocess.run([candidate, "-c", probe], capture_output=True, check=False)
        if answer.stdout.split() == [str(part).encode() for part in PYTHON_VERSION]:
            return candidate
    raise DemoError(
        f"CPython {minor} is needed for BuildGrid "
        f"(pyenv install {minor} / apt-get install python{minor}-venv)"
    )


def venv_key(requirements: bytes, python_version_verbose: bytes) -> str:
    """Names the venv after the pins and the exact interpreter, so editing either
    installs afresh and a warm demo skips the install."""
    return hashlib.sha256(requirements + python_version_verbose).hexdigest()[:16]


def pip_environment(caller: Mapping[str, str]) -> dict[str, str]:
    env = {key: value for key, value in caller.items() if key not in PIP_VARIABLES_DROPPED}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def install(requirements: Path, cache_root: Path, python: str) -> Path:
    """The venv with the pinned BuildGrid, installed unless a ready one exists."""
    verbose_version = subprocess.run([python, "-VV"], capture_output=True, check=True).stdout
    venv = cache_root / f"venv-{venv_key(requirements.read_bytes(), verbose_version)}"
    ready = venv / "ready"
    if ready.is_file():
        return venv
    cache_root.mkdir(parents=True, exist_ok=True)
    # Two demos at once must not build the same venv over each other.
    with (cache_root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not ready.is_file():
            log(f"installing BuildGrid into {venv}")
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([python, "-m", "venv", str(venv)], check=True)
            subprocess.run(
                [
                    str(venv / "bin" / "python"),
                    *("-m", "pip", "install", "--quiet", "--disable-pip-version-check"),
                    *("--no-deps", "--require-hashes", "--only-binary=:all:"),
                    *("-r", str(requirements)),
                ],
                env=pip_environment(os.environ),
                stdout=sys.stderr,
                check=True,
            )
            ready.touch()
    return venv


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_environment(caller: Mapping[str, str], port: int, storage: Path) -> dict[str, str]:
    return {**caller, PORT_VARIABLE: str(port), STORAGE_VARIABLE: str(storage)}


def listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


def last_lines(path: Path, count: int) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(lines[-count:])


@contextlib.contextmanager
def running_server(venv: Path, files: ServerFiles, work: Path) -> Iterator[int]:
    """BuildGrid serving from work/cas on a free port; yields the port. Stopped on
    exit; when the body fails, the end of its log is printed."""
    port = free_port()
    storage = work / "cas"
    storage.mkdir()
    server_log = work / "buildgrid.log"
    with server_log.open("wb") as output:
        process = subprocess.Popen(
            [str(venv / "bin" / "bgd"), "server", "start", str(files.config)],
            env=server_environment(os.environ, port, storage),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_listening(process, port, server_log)
        log(f"BuildGrid listening on 127.0.0.1:{port} (pid {process.pid})")
        yield port
    except BaseException:
        log(f"last lines of the BuildGrid log:\n{last_lines(server_log, LOG_LINES_ON_FAILURE)}")
        raise
    finally:
        stop(process)


def wait_until_listening(process: subprocess.Popen[bytes], port: int, server_log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DemoError(f"BuildGrid exited during start-up (log: {server_log})")
        if listening(port):
            return
        time.sleep(0.2)
    raise DemoError(
        f"BuildGrid did not listen on 127.0.0.1:{port} within {START_TIMEOUT_SECONDS:g} s"
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
