"""`make bench-images`: sizes, rebuild time, layer reuse, commit independence,
reproducibility and start-up time of the service images.

  bench/images/bench.sh [--service PACKAGE] [--runs N] [--skip-independent]

bench.sh points the docker CLI at the engine and exports this tree's build metadata,
then runs this. Run `make docker` first.

  1. sizes     every image and the base alone: as the engine counts it, its files, and
               gzipped (as a registry stores it), per layer for one
  2. paths     the 10 largest paths of one service image
  3. rebuild   a one-line change to services/PACKAGE/main.py, then
               `./pants package services/PACKAGE:image` with warm caches: wall time,
               which layers changed (only srcs should), and after the change is
               reverted (always) whether the rebuilt image is the original
  3b. commit   the same tree built as another commit (other MERIDIAN_BUILD_REVISION and
               _VERSION): the same image id, as a release's build-once digest needs
  4. repro     the same commit built again in an independent, empty image store (a
               second Podman service): base, deps and srcs layer digests compared
               (Podman only; skipped with --skip-independent)
  5. start-up  container start to /health/live and /health/startup, median of N runs,
               of the image as built and of each --compare IMAGE (e.g. an earlier build)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from tools.images import imagestats
from tools.images.imagecheck import (
    REPO_ROOT,
    built_image_id,
    catalog,
    docker,
    free_port,
    http,
    out,
    run_args,
    service_packages,
    size_budget,
)

LAYER_NAMES = ("base", "deps", "srcs")
BASE_INFO = REPO_ROOT / "dist/deployments.docker.base/base.docker-info.json"
RESTART_LINE = "meridian: podman system service exited"
MARKER = '_BENCH_MARKER = "{}"  # added by bench/images/bench.sh, reverted when it ends\n'
PANTS_STEP = re.compile(r"(\d\d:\d\d:\d\d\.\d\d) \[INFO\] (Starting|Completed): (.*)")
# BuildKit records an empty layer for a WORKDIR that exists.
EMPTY_LAYER = imagestats.EMPTY_LAYER


class BenchError(Exception):
    pass


def heading(text: str) -> None:
    print(f"\n== {text}", flush=True)


def engine_restarts() -> int:
    """How often the Podman service restarted (see engine.py); 0 with a Docker daemon."""
    log = Path(os.environ.get("MERIDIAN_ENGINE_LOG") or "/nonexistent")
    if not log.is_file() or os.environ.get("MERIDIAN_ENGINE") != "podman":
        return 0
    return log.read_text(errors="replace").count(RESTART_LINE)


def timed_package(log: Path, *targets: str, env: Mapping[str, str] | None = None) -> float:
    """Seconds of `./pants package TARGETS`, run once more if the Podman service died and
    restarted meanwhile (Podman 4.3's builder panic)."""
    environment = dict(os.environ if env is None else env)
    for attempt in range(2):
        restarts = engine_restarts()
        started = time.monotonic()
        with log.open("w") as output:
            result = subprocess.run(
                [str(REPO_ROOT / "pants"), "package", *targets],
                cwd=REPO_ROOT,
                env=environment,
                stdout=output,
                stderr=subprocess.STDOUT,
                check=False,
            )
        seconds = time.monotonic() - started
        if result.returncode == 0:
            return seconds
        if attempt == 0 and engine_restarts() > restarts:
            print("bench: the Podman service restarted during the build; building again")
            continue
        break
    raise BenchError(f"./pants package {' '.join(targets)} failed:\n{log.read_text()[-3000:]}")


def step_seconds(log: Path, pattern: str) -> str:
    """Seconds between Pants' Starting/Completed lines of the last step matching `pattern`."""
    starts: dict[str, datetime] = {}
    last: float | None = None
    for line in log.read_text().splitlines():
        match = PANTS_STEP.match(line)
        if not match or not re.search(pattern, match[3]):
            continue
        stamp = datetime.strptime(match[1], "%H:%M:%S.%f")
        if match[2] == "Starting":
            starts[match[3]] = stamp
        elif match[3] in starts:
            last = (stamp - starts[match[3]]).total_seconds()
    return "n/a" if last is None else f"{last:.2f}"


def layers_of(image: str, env: Mapping[str, str] | None = None) -> list[str]:
    """The image's layers with content, bottom up."""
    layers = "{{range .RootFS.Layers}}{{println .}}{{end}}"
    listing = docker("image", "inspect", "--format", layers, image, check=True, env=env)
    return [layer for layer in listing.stdout.decode().split() if layer != EMPTY_LAYER]


def sizes(packages: Sequence[str], scratch: Path, shown: str) -> None:
    heading(
        "sizes (MB; 1 MB = 10^6 bytes; goal: 30 MB of files for a service that needs no "
        "backing service, 35 MB for one that does)"
    )
    print(f"{'image':32} {'engine counts':>13} {'files':>9} {'gzipped':>9} {'goal':>6}")
    images = [("meridian/base", base_image_id(), "")]
    images += [(catalog()[p]["image"], built_image_id(p, "image"), p) for p in packages]
    report: tuple[list[imagestats.Layer], dict[str, int]] = ([], {})
    for name, image, package in images:
        archive = scratch / "image.tar"
        out("save", "-o", str(archive), image)
        layers, files = imagestats.analyse(str(archive), LAYER_NAMES)
        engine = int(out("image", "inspect", "--format", "{{.Size}}", image))
        gzip = sum(layer.gzip_size for layer in layers)
        size = sum(files.values())
        goal = ""
        if package:  # the base alone has none
            budget = size_budget(package)
            goal = f"{'<=' if size <= budget else '>'}{budget / 1e6:.0f}"
        print(f"{name:32} {engine / 1e6:13.2f} {size / 1e6:9.2f} {gzip / 1e6:9.2f} {goal:>6}")
        if name == shown:
            report = (layers, files)
        archive.unlink()
    heading(f"layers and the 10 largest paths of {shown}")
    imagestats.print_report(*report, 10)


def base_image_id() -> str:
    if not BASE_INFO.is_file():
        raise BenchError(
            f"no {BASE_INFO.relative_to(REPO_ROOT)}: build the images first (make docker)"
        )
    image_id: str = json.loads(BASE_INFO.read_text())["image_id"]
    return image_id.removeprefix("sha256:")


@contextmanager
def edited(source: Path) -> Iterator[None]:
    """The source with a one-line change, restored whatever happens."""
    original = source.read_bytes()
    source.write_bytes(original + MARKER.format(time.time_ns()).encode())
    try:
        yield
    finally:
        source.write_bytes(original)
        print(f"bench: restored {source}")


def rebuild(package: str, scratch: Path) -> list[str]:
    repository, target = catalog()[package]["image"], f"services/{package}:image"
    heading(f"rebuild of {target} after a one-line change (warm caches)")
    timed_package(scratch / "warm.log", target)
    before = layers_of(built_image_id(package, "image"))
    unchanged = timed_package(scratch / "nochange.log", target)
    with edited(REPO_ROOT / f"services/{package}/main.py"):
        time.sleep(2)  # as after an edit: pantsd has seen the change before the build
        changed = timed_package(scratch / "changed.log", target)
        after = layers_of(built_image_id(package, "image"))
    time.sleep(2)
    timed_package(scratch / "reverted.log", target)
    reverted = layers_of(built_image_id(package, "image"))
    print(f"{'no change: ./pants package ' + target:60} {unchanged:6.2f} s")
    print(f"{'one-line change: ./pants package ' + target:60} {changed:6.2f} s")
    pex_step = step_seconds(scratch / "changed.log", r"image-srcs\.pex")
    image_step = step_seconds(scratch / "changed.log", f"docker image {repository}:")
    print(f"{'  of which the first-party PEX (Pants)':60} {pex_step:>6} s")
    print(f"{'  of which the image build':60} {image_step:>6} s")
    print(f"{'layer':10} {'before':14} {'after edit':24} after revert")
    for index, layer in enumerate(before):
        name = LAYER_NAMES[index] if index < len(LAYER_NAMES) else str(index)
        edit = after[index] if index < len(after) else ""
        back = reverted[index] if index < len(reverted) else ""
        edit_text = "same" if edit == layer else f"CHANGED {edit[7:19]}"
        back_text = "same as before" if back == layer else f"DIFFERENT {back[7:19]}"
        print(f"{name:10} {layer[7:19]:14} {edit_text:24} {back_text}")
    return before


def commit_independence(package: str, scratch: Path) -> None:
    target = f"services/{package}:image"
    heading(f"commit independence: {target} built as another commit")
    as_built = built_image_id(package, "image")
    other = {
        **os.environ,
        "MERIDIAN_BUILD_REVISION": "0123456789ab",
        "MERIDIAN_BUILD_VERSION": "9.9.9",
    }
    timed_package(scratch / "other-commit.log", target, env=other)
    as_other = built_image_id(package, "image")
    print(f"{os.environ.get('MERIDIAN_BUILD_REVISION', ''):24} {as_built[:12]}")
    print(f"{'0123456789ab':24} {as_other[:12]}")
    print(
        "the same image"
        if as_other == as_built
        else "DIFFERENT images: the image holds commit metadata"
    )
    timed_package(scratch / "back.log", target)  # dist/ names this tree's build again


def independent_store(package: str, scratch: Path, before: Sequence[str]) -> None:
    """The same commit built by a second Podman service with its own, empty store and the
    same storage driver: drivers order a layer's tar entries differently (vfs sorts full
    paths, overlay walks directories), so only the same driver can give the same digests."""
    target = f"services/{package}:image"
    heading(f"reproducibility: {target} built again in an empty image store")
    podman, setsid = shutil.which("podman"), shutil.which("setsid")
    if not (podman and setsid):
        raise BenchError("podman and setsid are needed for the independent build")
    conf = Path(os.environ["CONTAINERS_STORAGE_CONF"]).read_text()
    driver = re.search(r'^driver = "(.*)"$', conf, re.MULTILINE)
    store = Path(tempfile.mkdtemp(prefix="meridian-bench-store.", dir="/var/tmp"))
    socket = store / "podman.sock"
    (store / "storage.conf").write_text(
        f'[storage]\ndriver = "{driver[1] if driver else "vfs"}"\n'
        f'runroot = "{store}/run"\ngraphroot = "{store}/root"\n'
    )
    service_env = {**os.environ, "CONTAINERS_STORAGE_CONF": str(store / "storage.conf")}
    with (store / "service.log").open("w") as log:
        service = subprocess.Popen(
            [
                setsid,
                podman,
                "--tmpdir",
                str(store / "tmp"),
                "system",
                "service",
                "--time=0",
                f"unix://{socket}",
            ],
            env=service_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    other = {**os.environ, "DOCKER_HOST": f"unix://{socket}"}
    try:
        for _ in range(30):
            if docker("version", env=other).returncode == 0:
                break
            time.sleep(1)
        cold = timed_package(scratch / "cold.log", target, env=other)
        independent = layers_of(built_image_id(package, "image"), other)
    finally:
        # Removing the images unmounts their layers; then nothing in the store is busy.
        docker("image", "prune", "--all", "--force", env=other)
        service.terminate()
        service.wait()
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for mount in sorted((m for m in mounts if m.startswith(str(store))), reverse=True):
            subprocess.run(["umount", mount], check=False)  # noqa: S607
        shutil.rmtree(store, ignore_errors=True)
    timed_package(scratch / "restore.log", target)  # dist/ names the main store's image again
    print(f"cold build in an empty store: {cold:.2f} s")
    print(f"{'layer':10} {'main store':14} {'empty store':14}")
    for index, layer in enumerate(before):
        theirs = independent[index] if index < len(independent) else ""
        verdict = "identical" if theirs == layer else "DIFFERENT"
        print(
            f"{LAYER_NAMES[index] if index < 3 else index!s:10} {layer[7:19]:14} {theirs[7:19]:14} {verdict}"
        )


def startup(image: str, host_network: bool) -> tuple[float, float]:
    """Seconds from container start to /health/live 200, and to /health/startup 200."""
    port = free_port()
    container = out("create", *run_args(host_network, port), image)
    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    live = ready = 30.0
    try:
        out("start", container)
        while time.monotonic() - started < 30:
            if live == 30.0 and http(f"{base}/health/live")[0] == 200:
                live = time.monotonic() - started
            if live < 30.0 and http(f"{base}/health/startup")[0] == 200:
                ready = time.monotonic() - started
                break
            time.sleep(0.01)
    finally:
        docker("rm", "-f", container)
    return live, ready


def startup_times(package: str, runs: int, compare: Sequence[str]) -> None:
    heading(
        f"start-up of {catalog()[package]['image']}: container start -> first 200 (median of {runs})"
    )
    image = built_image_id(package, "image")
    host_network = os.environ.get("MERIDIAN_CONTAINER_NETWORK") == "host"
    # Other images of the service (e.g. an earlier release), timed the same way.
    variants = [("as built", image), *((other, other) for other in compare)]
    print(f"{'image':40} {'live (s)':>12} {'startup (s)':>15}")
    for label, candidate in variants:
        times = [startup(candidate, host_network) for _ in range(runs)]
        print(
            f"{label:40} {statistics.median(t[0] for t in times):12.2f} {statistics.median(t[1] for t in times):15.2f}"
        )
    baseline = []
    for _ in range(runs):
        container = out("create", "--entrypoint", "/usr/bin/python3.11", image, "-c", "pass")
        started = time.monotonic()
        out("start", "--attach", container)
        baseline.append(time.monotonic() - started)
        docker("rm", "-f", container)
    print(f"{'(engine: start to exit of python -c pass)':40} {statistics.median(baseline):12.2f}")


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--service", default="", help="the package to edit and time, e.g. current_account"
    )
    parser.add_argument("--runs", type=int, default=5, help="start-ups per variant")
    parser.add_argument(
        "--skip-independent", action="store_true", help="skip the empty-store build"
    )
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="IMAGE",
        help="also time the start-up of this image of the service (e.g. an earlier build)",
    )
    args = parser.parse_args(argv)
    packages = service_packages()
    package = args.service or packages[0]
    if package not in packages:
        parser.error(
            f"--service {package}: services/{package} is not a service (one of {', '.join(packages)})"
        )
    if args.runs < 1:
        parser.error(f"--runs must be a positive number, not {args.runs}")
    try:
        with tempfile.TemporaryDirectory() as directory:
            scratch = Path(directory)
            sizes(packages, scratch, catalog()[package]["image"])
            before = rebuild(package, scratch)
            commit_independence(package, scratch)
            if not args.skip_independent and os.environ.get("MERIDIAN_ENGINE") == "podman":
                independent_store(package, scratch, before)
            else:
                heading("reproducibility: skipped (needs the Podman engine; --skip-independent)")
            startup_times(package, args.runs, args.compare)
    except (BenchError, RuntimeError) as error:
        print(f"bench: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
