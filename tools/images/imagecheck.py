"""`make test-images`: checks every service image Pants built last (make docker first).

  tools/images/test.sh [--no-tilt-push] [--no-repro] [PACKAGE...]
                                                   default: every services/<package>

test.sh points the docker CLI at the engine (engine.sh) and exports this tree's build
metadata (tools/image-tags.sh --env), then runs this. For each image:
  - under the size budget: 50 MB of files (the merged filesystem's regular files, the
    same on every engine; `docker images` counts differently on Docker and on Podman,
    which adds the layers' tar headers)
  - metadata: user 65532:65532, its container port, exec-form entry point, OCI labels, and
    nothing of the commit (no revision, version or date in labels or
    /etc/meridian/build.json): the same inputs give the same image on every commit;
    the configuration's `created` and history at the epoch (tools/images/normalise.py)
  - runs as Kubernetes runs it: read-only root, tmpfs /tmp, all capabilities dropped, no
    privilege escalation; backing services configured but unreachable; the build
    revision and version injected as a deployment does (MERIDIAN_BUILD_* variables)
  - /health/live 200, /health/startup 200 (once the client libraries have loaded),
    /metrics 200, /health/ready 503 (its backing services are down) and /version names
    the injected revision
  - the service process is uid/gid 65532, cannot write / and can write /tmp
  - no shell: --entrypoint /bin/sh (and bash, dash) fails
  - stops cleanly (exit 0) on SIGTERM
and for each dev image (:dev-image, what Tilt deploys), live update as Tilt does it:
  - a changed main.py sent through `tar -C / -x -f -` in the running container replaces
    the image's copy, the service restarts itself (MERIDIAN_RELOAD=1) and serves the
    change; `rm -rf` removes a synced file
and Tilt's build command (tools/images/tilt-build.sh) against a plain-HTTP registry on
localhost (Debian's docker-registry), as a cluster's local registry is: one push, of
Tilt's tag only (--no-tilt-push skips it).
Last, reproducibility (--no-repro skips it): the first PACKAGE's image built twice, each
time into an empty image store of a private engine like the one in use, at different
times, must give the same image ids and manifest digests (tools/images/repro.py).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tools.images import imagestats, normalise

REPO_ROOT = Path(__file__).resolve().parents[2]
# Every service's name, image, needs and container port (written by `make services`).
CATALOG = REPO_ROOT / "services/catalog.json"
# Bytes of files a service image may hold: the base, the chassis' libraries and the
# service's code, plus room for the client libraries of the backing services it needs.
IMAGE_BUDGET_BYTES = 30_000_000
CLIENTS_BUDGET_BYTES = 5_000_000
SERVICE_USER = "65532:65532"
SITE_PACKAGES = "/app/lib/python3.11/site-packages"
WAIT_SECONDS = 30
BUILD_METADATA = ("MERIDIAN_BUILD_REVISION", "MERIDIAN_BUILD_VERSION")
SHELLS = ("/bin/sh", "/bin/bash", "/usr/bin/dash")
# Podman 4.3 now and then fails to start a container with "write child: broken pipe"
# (exit 125: the engine's error, not the container's).
ENGINE_START_FLAKE = "broken pipe"
ENGINE_ERROR = 125


class Checks:
    """Prints each check as it runs and counts the failures."""

    def __init__(self) -> None:
        self.failures = 0

    def __call__(self, description: str, passed: bool, detail: str = "") -> bool:
        print(f"  {'ok  ' if passed else 'FAIL'}  {description}", flush=True)
        if not passed:
            self.failures += 1
            if detail:
                print("        " + detail.replace("\n", "\n        "), flush=True)
        return passed

    def equals(self, description: str, actual: object, expected: object) -> bool:
        return self(description, actual == expected, f"expected {expected!r}, got {actual!r}")


def docker(
    *args: str,
    stdin: bytes | None = None,
    check: bool = False,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """The docker CLI (tools/images/bin/docker on PATH), a start retried on Podman's flake."""
    environment = None if env is None else dict(env)
    for attempt in range(3):
        result = subprocess.run(
            ["docker", *args],  # noqa: S607 # the wrapper on PATH, as the scripts run it
            input=stdin,
            capture_output=True,
            check=False,
            env=environment,
        )
        flaky = result.returncode == ENGINE_ERROR and ENGINE_START_FLAKE in result.stderr.decode()
        if args[0] != "run" or not flaky or attempt == 2:
            break
        time.sleep(1)
    if check and result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {result.stderr.decode().strip()}")
    return result


def out(*args: str) -> str:
    return docker(*args, check=True).stdout.decode().strip()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_args(host_network: bool, port: int) -> list[str]:
    """As Kubernetes runs a service: read-only root, tmpfs /tmp, no capabilities, no
    privilege escalation, backing services unreachable; its HTTP port on `port` of the
    loopback: its container port published there, or, on an engine without container
    networking, the service listening there itself."""
    args = ["--read-only", "--tmpfs", "/tmp:rw,size=16m", "--cap-drop", "ALL"]  # noqa: S108
    args += ["--security-opt", "no-new-privileges"]
    for name, value in unreachable_backing_services().items():
        args += ["-e", f"{name}={value}"]
    if host_network:
        return [*args, "--network", "host", "-e", "HOST=127.0.0.1", "-e", f"PORT={port}"]
    return [*args, "-p", f"127.0.0.1:{port}:{container_port()}"]


def built_image_id(package: str, target: str) -> str:
    info = REPO_ROOT / f"dist/services.{package}/{target}.docker-info.json"
    if not info.is_file():
        raise SystemExit(
            f"test: no {info.relative_to(REPO_ROOT)}: build the images first (make docker)"
        )
    image_id: str = json.loads(info.read_text())["image_id"]
    return image_id.removeprefix("sha256:")


def files_size(image: str) -> int:
    """Bytes of regular files in the image's filesystem, from its `docker save` archive."""
    with tempfile.TemporaryDirectory() as scratch:
        archive = Path(scratch) / "image.tar"
        docker("save", "-o", str(archive), image, check=True)
        _, files = imagestats.analyse(str(archive), [])
    return sum(files.values())


def build_times(image: str) -> list[str]:
    """The image configuration's `created` and each history entry's, from its `docker
    save` archive (inspect shows only the first)."""
    with tempfile.TemporaryDirectory() as scratch:
        archive = Path(scratch) / "image.tar"
        docker("save", "-o", str(archive), image, check=True)
        with tarfile.open(archive) as saved:
            (entry,) = json.loads(normalise.read_member(saved, "manifest.json"))
            config = json.loads(normalise.read_member(saved, entry["Config"]))
    return [config.get("created", ""), *(h.get("created", "") for h in config.get("history", []))]


def http(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 # loopback
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (OSError, ValueError):
        return 0, b""


def wait_for(condition: Callable[[], bool], seconds: float = WAIT_SECONDS) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def version_field(base: str, field: str) -> str:
    status, body = http(f"{base}/version")
    if status != 200:
        return ""
    value: str = json.loads(body).get(field, "")
    return value


def sync_archive(directory: str, name: str, content: bytes) -> bytes:
    """A tarball as Tilt's live_update sends it: the synced directory, then its files,
    named by their path in the container without the leading slash."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        folder = tarfile.TarInfo(directory.lstrip("/"))
        folder.type, folder.mode, folder.mtime = tarfile.DIRTYPE, 0o755, int(time.time())
        archive.addfile(folder)
        member = tarfile.TarInfo(f"{directory.lstrip('/')}/{name}")
        member.size, member.mode, member.mtime = len(content), 0o644, int(time.time())
        archive.addfile(member, io.BytesIO(content))
    return buffer.getvalue()


class Images:
    """Runs the checks; removes every container it started."""

    def __init__(self, checks: Checks, env: dict[str, str]) -> None:
        self.checks = checks
        self.env = env
        self.host_network = env.get("MERIDIAN_CONTAINER_NETWORK") == "host"
        self.containers: list[str] = []

    def start(self, image: str, *extra: str, read_only: bool = True) -> tuple[str, str]:
        port = free_port()
        args = run_args(self.host_network, port)
        if not read_only:  # as overlays/dev runs it, for live update
            args = [a if a != "--read-only" else "--tmpfs=/run" for a in args]
        container = out("run", "-d", *args, *extra, image)
        self.containers.append(container)
        return container, f"http://127.0.0.1:{port}"

    def in_container(self, container: str, code: str) -> subprocess.CompletedProcess[bytes]:
        return docker("exec", container, "/usr/bin/python3.11", "-I", "-c", code)

    def label(self, image: str, name: str) -> str:
        key = f"org.opencontainers.image.{name}"
        return out("image", "inspect", "--format", f'{{{{index .Config.Labels "{key}"}}}}', image)

    def no_shell(self, image: str) -> tuple[bool, str]:
        # Control: the same kind of run works with a program that is there, so a failure
        # below means the shell is missing, not that the engine cannot run the image.
        control = docker("run", "--rm", "--entrypoint", "/usr/bin/python3.11", image, "-c", "pass")
        if control.returncode != 0:
            return False, f"the control run failed: {control.stderr.decode().strip()}"
        ran = [
            s
            for s in SHELLS
            if docker("run", "--rm", "--entrypoint", s, image, "-c", "true").returncode == 0
        ]
        return not ran, f"{', '.join(ran)} ran"

    def image(self, package: str) -> None:
        service, repository = catalog()[package]["name"], catalog()[package]["image"]
        image = built_image_id(package, "image")
        print(f"{repository} ({image[:12]})")
        check = self.checks
        size, budget = files_size(image), size_budget(package)
        check(f"size {size / 1e6:.2f} MB of files <= {budget / 1e6:.2f} MB", size <= budget)
        inspect = json.loads(out("image", "inspect", image))[0]["Config"]
        check.equals("runs as 65532:65532", inspect["User"], SERVICE_USER)
        exposed = f"{container_port()}/tcp"
        check.equals(f"exposes {exposed}", sorted(inspect.get("ExposedPorts") or {}), [exposed])
        check.equals("exec-form entry point", inspect["Entrypoint"], ["/app/pex"])
        check.equals(f"label title {service}", self.label(image, "title"), service)
        check.equals(
            "label source", self.label(image, "source"), self.env.get("MERIDIAN_SOURCE_URL", "")
        )
        commit_labels = [self.label(image, n) for n in ("revision", "version", "created")]
        check.equals(
            "no label names the commit (revision, version, created)", commit_labels, ["", "", ""]
        )
        times = sorted(set(build_times(image)))
        check.equals(f"created and its history at {normalise.EPOCH}", times, [normalise.EPOCH])

        injected = [a for name in BUILD_METADATA for a in ("-e", f"{name}={self.env[name]}")]
        container, base = self.start(image, *injected)
        if not check(
            "/health/live 200 (read-only root, tmpfs /tmp, no capabilities)",
            wait_for(lambda: http(f"{base}/health/live")[0] == 200),
        ):
            print(docker("logs", "--tail", "20", container).stderr.decode())
            return
        # 503 until the client libraries have loaded in the background and checks ran once.
        check("/health/startup 200", wait_for(lambda: http(f"{base}/health/startup")[0] == 200))
        check.equals("/metrics 200", http(f"{base}/metrics")[0], 200)
        if needs_backing_services(package):
            check.equals(
                "/health/ready 503 with its backing services down",
                http(f"{base}/health/ready")[0],
                503,
            )
        else:
            ready = http(f"{base}/health/ready")[0]
            check.equals("/health/ready 200 (it needs no backing service)", ready, 200)
        revision, version = (self.env[name] for name in BUILD_METADATA)
        check.equals(f"/version revision {revision}", version_field(base, "revision"), revision)
        check.equals(f"/version version {version}", version_field(base, "version"), version)
        check.equals(f"/version name {service}", version_field(base, "name"), service)
        build_json = self.in_container(container, "print(open('/etc/meridian/build.json').read())")
        check.equals(
            "/etc/meridian/build.json names the service and nothing of the commit",
            json.loads(build_json.stdout or b"{}"),
            {"service": service, "source": self.env.get("MERIDIAN_SOURCE_URL", "")},
        )
        ids = self.in_container(
            container,
            "print(*(l.split()[1] for l in open('/proc/1/status') if l.startswith(('Uid:', 'Gid:'))))",
        )
        check.equals(
            "the service process is uid/gid 65532", ids.stdout.decode().strip(), "65532 65532"
        )
        read_only = self.in_container(
            container,
            "\n".join(
                [
                    "import errno",
                    "try:",
                    "    open('/app/probe', 'w')",
                    "except OSError as error:",
                    "    raise SystemExit(error.errno not in (errno.EROFS, errno.EACCES))",
                    "raise SystemExit(1)",
                ]
            ),
        )
        check("the root filesystem is read-only", read_only.returncode == 0)
        tmp = self.in_container(container, "open('/tmp/probe', 'w').write('ok')")
        check("/tmp is writable", tmp.returncode == 0)  # noqa: S108 # the container's
        check(
            "no shell (--entrypoint /bin/sh, /bin/bash, /usr/bin/dash fail)", *self.no_shell(image)
        )
        docker("stop", "--time", "15", container, check=True)
        check.equals(
            "stops with exit code 0 on SIGTERM",
            out("inspect", "--format", "{{.State.ExitCode}}", container),
            "0",
        )

    def dev_image(self, package: str) -> None:
        service, repository = catalog()[package]["name"], catalog()[package]["image"]
        package_dir = f"{SITE_PACKAGES}/{package}"
        image = built_image_id(package, "dev-image")
        print(f"{repository}:dev ({image[:12]}): live update as Tilt does it")
        check = self.checks
        container, base = self.start(image, "-e", "MERIDIAN_RELOAD=1", read_only=False)
        if not check("/health/live 200", wait_for(lambda: http(f"{base}/health/live")[0] == 200)):
            return
        main = (REPO_ROOT / f"services/{package}/main.py").read_bytes()
        # Renames the service, which /version shows once the synced module runs.
        rename = (
            f'\nSERVICE = __import__("dataclasses").replace(SERVICE, name="{service}-synced")\n'
        )
        tar = ("exec", "-i", container, "tar", "-C", "/", "-x", "-f", "-")
        synced = docker(*tar, stdin=sync_archive(package_dir, "main.py", main + rename.encode()))
        check(
            "tar -C / -x -f - replaces main.py in site-packages",
            synced.returncode == 0,
            synced.stderr.decode(),
        )
        check(
            "the service restarts itself and serves the synced code",
            wait_for(lambda: version_field(base, "name") == f"{service}-synced"),
        )
        docker(*tar, stdin=sync_archive(package_dir, "obsolete.py", b""), check=True)
        removed = docker("exec", container, "rm", "-rf", f"{package_dir}/obsolete.py")
        check("rm -rf removes a synced file", removed.returncode == 0, removed.stderr.decode())
        gone = self.in_container(
            container, f"import os, sys; sys.exit(os.path.exists('{package_dir}/obsolete.py'))"
        )
        check("  ... and it is gone", gone.returncode == 0)

    def tilt_push(self, package: str) -> None:
        repository = catalog()[package]["image"]
        check = self.checks
        with local_registry() as (port, log):
            print(
                f"tools/images/tilt-build.sh services/{package} to a plain-HTTP registry on localhost:{port}"
            )
            env = {
                **os.environ,
                "EXPECTED_REF": f"localhost:{port}/{repository}:tilt-build-1",
                "EXPECTED_REGISTRY": f"localhost:{port}",
                "MERIDIAN_KUBE_CONTEXT": "kind-meridian",
            }
            build = subprocess.run(
                [str(REPO_ROOT / "tools/images/tilt-build.sh"), f"services/{package}"],
                env=env,
                check=False,
            )
            check("the build command succeeds", build.returncode == 0)
            status, body = http(f"http://127.0.0.1:{port}/v2/{repository}/tags/list")
            tags = json.loads(body).get("tags") if status == 200 else None
            check.equals("the registry holds Tilt's tag and no other", tags, ["tilt-build-1"])
            pushes = log.read_text().count(f"PUT /v2/{repository}/manifests/")
            check.equals("one manifest was pushed", pushes, 1)

    def remove_containers(self) -> None:
        for container in self.containers:
            docker("rm", "-f", container)


@contextmanager
def local_registry() -> Iterator[tuple[int, Path]]:
    """Debian's docker-registry on a free loopback port, as a cluster's local one (KEP-1755
    local-registry-hosting): plain HTTP. Every manifest pushed to it shows in its log."""
    registry = shutil.which("docker-registry")
    if not registry:
        raise SystemExit("test: docker-registry is missing: tools/prerequisites.sh installs it")
    with tempfile.TemporaryDirectory() as scratch:
        root, port = Path(scratch), free_port()
        (root / "config.yml").write_text(
            "version: 0.1\nlog: {level: info, formatter: text}\n"
            f"storage: {{filesystem: {{rootdirectory: {root}/data}}}}\n"
            f'http: {{addr: "127.0.0.1:{port}"}}\n'
        )
        log = root / "log"
        with log.open("w") as output:
            server = subprocess.Popen(
                [registry, "serve", str(root / "config.yml")], stdout=output, stderr=output
            )
        try:
            if not wait_for(lambda: http(f"http://127.0.0.1:{port}/v2/")[0] == 200, 15):
                raise SystemExit(f"test: the registry did not start:\n{log.read_text()}")
            yield port, log
        finally:
            server.terminate()
            server.wait()


def catalog() -> dict[str, dict[str, Any]]:
    """The catalog's services, by package."""
    services = json.loads(CATALOG.read_text())["services"]
    return {service["package"]: service for service in services}


def container_port() -> int:
    """The port every service listens on in its container."""
    port: int = json.loads(CATALOG.read_text())["container_port"]
    return port


def unreachable_backing_services() -> dict[str, str]:
    """Each backing service's setting, as a well-formed address of a port nothing listens on."""
    backing = json.loads(CATALOG.read_text())["backing"]
    return {
        b["setting"]: b["address"].format(host="127.0.0.1", port=1, database="meridian")
        for b in backing
    }


def needs_backing_services(package: str) -> bool:
    """Whether the service needs any backing service."""
    return bool(catalog()[package]["needs"])


def size_budget(package: str) -> int:
    """30 MB for a service that needs no backing service, 35 MB for one that does."""
    return IMAGE_BUDGET_BYTES + (CLIENTS_BUDGET_BYTES if needs_backing_services(package) else 0)


def service_packages() -> list[str]:
    return sorted(catalog())


def main(argv: Sequence[str]) -> int:
    args = list(argv)
    if args[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    flags = [argument for argument in args if argument.startswith("-")]
    unknown = sorted(set(flags) - {"--no-tilt-push", "--no-repro"})
    if unknown:
        print(f"test: unknown option {unknown[0]} (try --help)", file=sys.stderr)
        return 2
    tilt_push, reproducible = "--no-tilt-push" not in flags, "--no-repro" not in flags
    packages = [argument for argument in args if not argument.startswith("-")]
    packages = packages or service_packages()
    for package in packages:
        if not (REPO_ROOT / f"services/{package}/BUILD").is_file():
            print(f"test: services/{package} is not a service", file=sys.stderr)
            return 1
    missing = [name for name in BUILD_METADATA if not os.environ.get(name)]
    if missing:
        print(
            f"test: {', '.join(missing)} unset: run tools/images/test.sh, which sets them",
            file=sys.stderr,
        )
        return 1
    checks = Checks()
    images = Images(checks, dict(os.environ))
    try:
        for package in packages:
            images.image(package)
            images.dev_image(package)
        if tilt_push:
            images.tilt_push(packages[0])
    finally:
        images.remove_containers()
    if reproducible:
        # Its own program: it builds with Pants against engines of its own.
        target = f"services/{packages[0]}:image"
        print(f"two builds of {target} in two empty image stores (tools/images/repro.py)")
        built = subprocess.run(
            [sys.executable, "-m", "tools.images.repro", "check", target],
            cwd=REPO_ROOT,
            check=False,
        )
        checks("the same image ids and manifest digests", built.returncode == 0)
    if checks.failures:
        print(f"test: {checks.failures} check(s) failed", file=sys.stderr)
        return 1
    print(f"test: all checks passed for {len(packages)} image(s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
