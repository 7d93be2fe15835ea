"""Finds a container engine for Meridian's image builds and tests, starting one if needed,
and prints the environment that points the docker CLI (and so Pants) at it.

  eval "$(tools/images/engine.sh env)"   # a Docker daemon (started if need be), else Podman
  tools/images/engine.sh status           # which engine, where
  tools/images/engine.sh stop             # stop the engines this script started

Pants 2.17 drives the `docker` CLI, which needs a daemon. In order:
  1. a Docker daemon that answers (DOCKER_HOST, else the default socket);
  2. else, as root on Linux, a private Docker daemon: Debian's docker.io (installed with
     apt if missing) on its own socket and data root, without networking (no bridge,
     no iptables: containers use the host's network, builds none);
  3. else Podman's Docker-compatible API (`podman system service`), configured by
     tools/images/containers.conf; it has no BuildKit (DOCKER_BUILDKIT=0).
Docker builds use BuildKit when the docker CLI can: one with the buildx plugin, or a CLI
older than 23.0 (BuildKit built in, as Debian's /usr/bin/docker 20.10); else the classic
builder.

Printed: DOCKER_HOST, DOCKER_BUILDKIT, MERIDIAN_ENGINE (docker | podman),
MERIDIAN_DOCKER_CLI (the CLI tools/images/bin/docker runs), MERIDIAN_BUILD_NETWORK and
MERIDIAN_CONTAINER_NETWORK (for a daemon without networking), MERIDIAN_ENGINE_LOG, and for
Podman CONTAINERS_CONF and CONTAINERS_STORAGE_CONF (to run `podman` itself on the same
images).

Settings (environment):
  MERIDIAN_ENGINE                 auto (default) | docker | podman
  MERIDIAN_DOCKER_CLI             the docker CLI to use (default: one that can BuildKit,
                                  else the first on PATH)
  MERIDIAN_PODMAN_STORAGE_DRIVER  auto (default) | overlay | vfs. auto uses overlay when
                                  the kernel can mount it here, else vfs (slower: a full
                                  copy per layer, but it works inside any container).
                                  The private Docker daemon decides the same way.

Standard library only, Python 3.9 or newer: it runs before anything is installed.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = REPO_ROOT / "tools/images/containers.conf"
WRAPPER_DIR = REPO_ROOT / "tools/images/bin"
ENGINES = ("auto", "docker", "podman")
STORAGE_DRIVERS = ("auto", "overlay", "vfs")
# The docker CLI became a plugin host at 23.0: BuildKit only through buildx after it.
FIRST_CLI_WITHOUT_BUILTIN_BUILDKIT = 23
PODMAN_START_SECONDS = 30
DOCKERD_START_SECONDS = 60
# The service restarts itself: Podman 4.3's builder can panic when two builds overlap
# and one is cancelled (buildah "semaphore: released more than held", fixed in 4.4),
# which Pants does when inputs change mid-build. That build fails; the next one finds
# the service up again.
PODMAN_RESTART_LOOP = """while true; do
  podman system service --time=0 "unix://$1" </dev/null
  echo "meridian: podman system service exited with $?; restarting" >&2
  sleep 1
done"""


class EngineError(Exception):
    """A setting or an engine that makes the requested environment impossible."""


def say(message: str) -> None:
    print(f"engine: {message}", file=sys.stderr)


def program(name: str) -> str:
    """The full path of a program on PATH."""
    found = shutil.which(name)
    if not found:
        raise EngineError(f"{name} is not on PATH")
    return found


@dataclass(frozen=True)
class Places:
    """Where the engines this script starts keep their sockets, state and images."""

    podman_state: Path
    podman_storage: Path
    # None when this user cannot run a Docker daemon (not root).
    docker_state: Path | None
    docker_data: Path | None

    @classmethod
    def for_user(cls, uid: int, env: Mapping[str, str]) -> Places:
        if uid == 0:
            return cls(
                Path("/run/meridian/podman"),
                Path("/var/lib/meridian/containers"),
                Path("/run/meridian/docker"),
                Path("/var/lib/meridian/docker"),
            )
        home = Path(env.get("HOME", "~")).expanduser()
        runtime = Path(env.get("XDG_RUNTIME_DIR") or f"/tmp/meridian-{uid}")  # noqa: S108
        data = Path(env.get("XDG_DATA_HOME") or home / ".local/share")
        return cls(runtime / "meridian/podman", data / "meridian/containers", None, None)

    @property
    def podman_socket(self) -> Path:
        return self.podman_state / "podman.sock"

    @property
    def podman_pid(self) -> Path:
        return self.podman_state / "service.pid"

    @property
    def podman_log(self) -> Path:
        return self.podman_state / "service.log"

    @property
    def storage_conf(self) -> Path:
        return self.podman_state / "storage.conf"

    @property
    def containers_conf(self) -> Path:
        """The service's copy of tools/images/containers.conf: it outlives the checkout
        that started it, which other checkouts' builds share."""
        return self.podman_state / "containers.conf"

    def docker_file(self, name: str) -> Path:
        if self.docker_state is None:
            raise EngineError("only root can run a Docker daemon of its own")
        return self.docker_state / name


def quietly(argv: Sequence[str], env: Mapping[str, str] | None = None, timeout: int = 10) -> str:
    """The command's stdout, or "" when it fails, hangs or is missing."""
    try:
        result = subprocess.run(
            list(argv),
            env=None if env is None else dict(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout if result.returncode == 0 else ""


def docker_answers(cli: str, env: Mapping[str, str]) -> bool:
    """The CLI reaches a server, with whatever DOCKER_HOST `env` has."""
    return bool(quietly([cli, "version", "--format", "{{.Server.Version}}"], env).strip())


def alive(pid_file: Path) -> bool:
    try:
        os.kill(int(pid_file.read_text().strip()), 0)
    except (OSError, ValueError):
        return False
    return True


def docker_clis(path: str) -> list[str]:
    """Every docker CLI on `path` and Debian's, this repository's wrapper left out."""
    found: list[str] = []
    wrapper = WRAPPER_DIR.resolve()
    for directory in [*path.split(os.pathsep), "/usr/bin"]:
        candidate = Path(directory or ".") / "docker"
        if not (candidate.is_file() and os.access(candidate, os.X_OK)):
            continue
        if candidate.parent.resolve() == wrapper or str(candidate) in found:
            continue
        found.append(str(candidate))
    return found


def cli_version_major(cli: str) -> int | None:
    """From `docker --version` ("Docker version 20.10.24+dfsg1, build ..."), which needs
    no daemon (`docker version` fails without one)."""
    match = re.search(r"version (\d+)\.", quietly([cli, "--version"]))
    return int(match[1]) if match else None


def cli_has_buildkit(cli: str) -> bool:
    if quietly([cli, "buildx", "version"]):
        return True
    major = cli_version_major(cli)
    return major is not None and major < FIRST_CLI_WITHOUT_BUILTIN_BUILDKIT


def choose_docker_cli(env: Mapping[str, str]) -> str:
    """MERIDIAN_DOCKER_CLI if set, else the first CLI that can BuildKit, else the first."""
    chosen = env.get("MERIDIAN_DOCKER_CLI", "")
    if chosen:
        if not (Path(chosen).is_file() and os.access(chosen, os.X_OK)):
            raise EngineError(
                f"MERIDIAN_DOCKER_CLI={chosen} is not an executable docker CLI; "
                "expected a path such as /usr/bin/docker"
            )
        return chosen
    clis = docker_clis(env.get("PATH", os.defpath))
    if not clis:
        raise EngineError(
            "the docker CLI is missing. Pants drives images through it, whichever engine "
            "runs them. Install it: apt-get install docker.io (Debian/Ubuntu), or Docker's "
            "docker-ce-cli package, or Docker Desktop / OrbStack / Rancher Desktop on macOS."
        )
    return next((cli for cli in clis if cli_has_buildkit(cli)), clis[0])


def overlay_mounts(directory: Path) -> bool:
    """The kernel can mount overlayfs on this filesystem (not inside many containers,
    whose root is overlayfs itself)."""
    if os.geteuid() != 0 or not (shutil.which("mount") and shutil.which("umount")):
        return False
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".overlay-probe.", dir=directory) as scratch:
        probe = Path(scratch)
        for name in ("lower", "upper", "work", "merged"):
            (probe / name).mkdir()
        options = f"lowerdir={probe}/lower,upperdir={probe}/upper,workdir={probe}/work"
        mounted = subprocess.run(
            [program("mount"), "-t", "overlay", "overlay", "-o", options, str(probe / "merged")],
            capture_output=True,
            check=False,
        )
        if mounted.returncode != 0:
            return False
        subprocess.run([program("umount"), str(probe / "merged")], check=False)
        return True


def storage_setting(env: Mapping[str, str]) -> str:
    wanted = env.get("MERIDIAN_PODMAN_STORAGE_DRIVER", "auto")
    if wanted not in STORAGE_DRIVERS:
        raise EngineError(
            f"MERIDIAN_PODMAN_STORAGE_DRIVER must be auto, overlay or vfs, not '{wanted}'"
        )
    return wanted


def podman_driver(wanted: str, storage_root: Path) -> str:
    if wanted != "auto":
        return wanted
    # Keep the driver of the images already stored: Podman cannot switch in place.
    for driver in ("overlay", "vfs"):
        if (storage_root / driver / "storage" / driver).is_dir():
            return driver
    return "overlay" if overlay_mounts(storage_root) else "vfs"


def dockerd_driver(wanted: str, data_root: Path) -> str:
    if wanted == "vfs" or (wanted == "auto" and (data_root / "vfs").is_dir()):
        return "vfs"
    if wanted == "overlay" or overlay_mounts(data_root):
        return "overlay2"
    return "vfs"


def apt_install(packages: Sequence[str], why: str, otherwise: str) -> None:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise EngineError(otherwise)
    say(f"{why}: installing {' '.join(packages)} with apt")
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    apt_get = program("apt-get")
    for argv in (
        [apt_get, "update", "-qq"],
        [apt_get, "install", "-y", "-qq", "--no-install-recommends", *packages],
    ):
        subprocess.run(argv, env=environment, stdout=sys.stderr, check=True)


def wait_until(
    answers: Callable[[], bool], running: Callable[[], bool], seconds: int, what: str, log: Path
) -> None:
    deadline = time.monotonic() + seconds
    while not answers():
        if not running() or time.monotonic() > deadline:
            tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-20:])
            raise EngineError(f"{what} did not come up; its log ({log}):\n{tail}")
        time.sleep(1)


def start_detached(
    argv: Sequence[str], log: Path, pid_file: Path, env: Mapping[str, str] | None = None
) -> None:
    """Runs argv in a session of its own from /: it outlives this script, the terminal
    and the checkout it was started from (conmon fails every container start once its
    working directory is gone)."""
    with log.open("w") as output:
        process = subprocess.Popen(
            [program("setsid"), *argv],
            cwd="/",
            env=None if env is None else dict(env),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    pid_file.write_text(f"{process.pid}\n")


def start_podman(places: Places, env: Mapping[str, str], cli: str) -> dict[str, str]:
    if not (shutil.which("podman") and shutil.which("runc")):
        apt_install(
            # runc: crun fails on hosts with hybrid cgroups; CNI plugins and iptables:
            # port mapping.
            ["podman", "runc", "containernetworking-plugins", "iptables"],
            "no Docker daemon",
            "no Docker daemon answers and Podman is not installed. Either start Docker "
            "(Docker Engine, Docker Desktop, OrbStack, Rancher Desktop), or install Podman "
            "(apt-get install podman runc; brew install podman && podman machine start) "
            "and run this again.",
        )
    settings = {
        "CONTAINERS_CONF": str(places.containers_conf),
        "CONTAINERS_STORAGE_CONF": str(places.storage_conf),
    }
    if alive(places.podman_pid) and podman_settings_changed(places):
        say("restarting Podman's service: tools/images/containers.conf differs from its copy")
        stop_engine(places.podman_pid)
    if not alive(places.podman_pid):
        driver = podman_driver(storage_setting(env), places.podman_storage)
        places.podman_state.mkdir(parents=True, exist_ok=True)
        # One store per driver: Podman refuses a store written by another driver.
        places.storage_conf.write_text(
            "# Written by tools/images/engine.sh; rewritten whenever it starts the service.\n"
            "[storage]\n"
            f'driver = "{driver}"\n'
            f'runroot = "{places.podman_state}/storage-{driver}"\n'
            f'graphroot = "{places.podman_storage}/{driver}/storage"\n'
        )
        places.containers_conf.write_text(CONTAINERS_CONF.read_text())
        places.podman_socket.unlink(missing_ok=True)
        say(
            f"starting Podman's Docker API on {places.podman_socket} "
            f"(storage: {driver}, log: {places.podman_log})"
        )
        start_detached(
            [
                program("bash"),
                "-c",
                PODMAN_RESTART_LOOP,
                "podman-service",
                str(places.podman_socket),
            ],
            places.podman_log,
            places.podman_pid,
            {**os.environ, **settings},
        )
    host = f"unix://{places.podman_socket}"
    wait_until(
        lambda: docker_answers(cli, {**env, "DOCKER_HOST": host}),
        lambda: alive(places.podman_pid),
        PODMAN_START_SECONDS,
        "Podman's service",
        places.podman_log,
    )
    return {
        "MERIDIAN_ENGINE": "podman",
        "MERIDIAN_DOCKER_CLI": cli,
        "DOCKER_HOST": host,
        "DOCKER_BUILDKIT": "0",
        **settings,
        "MERIDIAN_ENGINE_LOG": str(places.podman_log),
        "MERIDIAN_BUILD_NETWORK": "",
        "MERIDIAN_CONTAINER_NETWORK": "",
    }


def can_start_dockerd(places: Places) -> bool:
    return (
        places.docker_state is not None
        and sys.platform.startswith("linux")
        and bool(shutil.which("dockerd") or shutil.which("apt-get"))
    )


def start_dockerd(places: Places, env: Mapping[str, str], cli: str) -> str:
    """The private daemon's DOCKER_HOST, started if need be."""
    socket = places.docker_file("docker.sock")
    pid_file, log = places.docker_file("dockerd.pid"), places.docker_file("dockerd.log")
    if not alive(pid_file):
        if not shutil.which("dockerd"):
            apt_install(["docker.io"], "no Docker daemon", "dockerd is missing")
        state, data = places.docker_file("."), places.docker_data or places.docker_file(".")
        state.mkdir(parents=True, exist_ok=True)
        data.mkdir(parents=True, exist_ok=True)
        driver = dockerd_driver(storage_setting(env), data)
        socket.unlink(missing_ok=True)
        say(f"starting a Docker daemon on {socket} (storage: {driver}, log: {log})")
        # No bridge and no iptables rules: nothing on the host changes, and it runs where
        # the network cannot be configured (containers). Builds then need --network none,
        # containers the host's network.
        start_detached(
            [
                program("dockerd"),
                f"--host=unix://{socket}",
                f"--data-root={data}",
                f"--exec-root={state / 'exec'}",
                f"--pidfile={state / 'daemon.pid'}",
                f"--storage-driver={driver}",
                "--iptables=false",
                "--bridge=none",
                "--ip-forward=false",
                "--ip-masq=false",
            ],
            log,
            pid_file,
        )
    host = f"unix://{socket}"
    wait_until(
        lambda: docker_answers(cli, {**env, "DOCKER_HOST": host}),
        lambda: alive(pid_file),
        DOCKERD_START_SECONDS,
        "the Docker daemon",
        log,
    )
    return host


def docker_settings(cli: str, host: str, log: str, places: Places) -> dict[str, str]:
    # The daemon this script starts has no networking (found again through DOCKER_HOST
    # once its settings are in the environment).
    networkless = (
        places.docker_state is not None and host == f"unix://{places.docker_file('docker.sock')}"
    )
    settings = {
        "MERIDIAN_ENGINE": "docker",
        "MERIDIAN_DOCKER_CLI": cli,
        "DOCKER_BUILDKIT": "1" if cli_has_buildkit(cli) else "0",
        "MERIDIAN_ENGINE_LOG": log,
        # A daemon without networking: builds without any, containers on the host's.
        "MERIDIAN_BUILD_NETWORK": "none" if networkless else "",
        "MERIDIAN_CONTAINER_NETWORK": "host" if networkless else "",
    }
    if host:
        settings["DOCKER_HOST"] = host
    return settings


def engine_settings(env: Mapping[str, str], places: Places) -> dict[str, str]:
    """What `env` prints: the chosen engine, started if need be."""
    engine = env.get("MERIDIAN_ENGINE", "auto") or "auto"
    if engine not in ENGINES:
        raise EngineError(f"MERIDIAN_ENGINE must be auto, docker or podman, not '{engine}'")
    storage_setting(env)  # a bad value fails before anything starts
    cli = choose_docker_cli(env)
    if engine == "podman":
        return start_podman(places, env, cli)
    host = env.get("DOCKER_HOST", "")
    if not host.startswith(f"unix://{places.podman_state}/") and docker_answers(cli, env):
        say(f"using the Docker daemon at {host or 'its default socket'}")
        return docker_settings(cli, host, env.get("MERIDIAN_ENGINE_LOG", ""), places)
    if can_start_dockerd(places):
        host = start_dockerd(places, env, cli)
        say(f"using the Docker daemon this script started ({host})")
        return docker_settings(cli, host, str(places.docker_file("dockerd.log")), places)
    if engine == "docker":
        raise EngineError(
            "MERIDIAN_ENGINE=docker, but no Docker daemon answers and none can be started "
            "here (needs root on Linux)"
        )
    return start_podman(places, env, cli)


def exports(settings: Mapping[str, str]) -> str:
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in settings.items())


def status(places: Places, env: Mapping[str, str]) -> int:
    lines = []
    if places.docker_state and alive(places.docker_file("dockerd.pid")):
        pid = places.docker_file("dockerd.pid").read_text().strip()
        lines.append(f"docker: daemon {pid} on unix://{places.docker_file('docker.sock')}")
    if alive(places.podman_pid):
        driver = re.search(r"^driver = .*$", places.storage_conf.read_text(), re.MULTILINE)
        lines.append(
            f"podman: service {places.podman_pid.read_text().strip()} on "
            f"unix://{places.podman_socket}, {driver[0] if driver else 'driver unknown'}"
        )
    clis = docker_clis(env.get("PATH", os.defpath))
    if not lines and clis and docker_answers(clis[0], env):
        lines.append(f"docker: daemon at {env.get('DOCKER_HOST') or 'its default socket'}")
    if not lines:
        print("none: no Docker daemon answers and this script started no engine")
        return 1
    print("\n".join(lines))
    return 0


def stop(places: Places) -> None:
    """Stops what this script started: each runs in a process group of its own."""
    pid_files = [places.podman_pid]
    if places.docker_state:
        pid_files.insert(0, places.docker_file("dockerd.pid"))
    for pid_file in pid_files:
        if alive(pid_file):
            stop_engine(pid_file)
            say(f"stopped the engine of {pid_file}")
        pid_file.unlink(missing_ok=True)


def stop_engine(pid_file: Path, seconds: float = 15) -> None:
    """SIGTERM to the engine's process group (each runs in one of its own), then waits."""
    os.killpg(int(pid_file.read_text().strip()), 15)
    deadline = time.monotonic() + seconds
    while alive(pid_file) and time.monotonic() < deadline:
        time.sleep(0.2)


def podman_settings_changed(places: Places) -> bool:
    """Whether the running service's settings are not this checkout's (or are gone)."""
    try:
        return places.containers_conf.read_text() != CONTAINERS_CONF.read_text()
    except FileNotFoundError:
        return True


def main(argv: Sequence[str]) -> int:
    command = argv[0] if argv else "env"
    places = Places.for_user(os.geteuid(), os.environ)
    try:
        if command == "env":
            print(exports(engine_settings(os.environ, places)), end="")
        elif command == "status":
            return status(places, os.environ)
        elif command == "stop":
            stop(places)
        elif command in ("-h", "--help", "help"):
            print(__doc__)
        else:
            raise EngineError(f"unknown command '{command}' (env, status, stop)")
    except EngineError as error:
        say(str(error))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
