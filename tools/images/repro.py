"""Reproducible images: the same tree built in two empty image stores, at different
times, gives the same image ids (the configuration's digest) and the same manifest
digests (what a registry gets on a push, and what a release manifest pins).

  python3 -m tools.images.repro check [TARGET...]         make test-images runs this
  python3 -m tools.images.repro record --out FILE TARGET...
  python3 -m tools.images.repro compare FIRST SECOND

check    builds TARGETs (default: the first service's :image) twice, each time with
         `./pants package` against a private engine of the kind the environment names
         (MERIDIAN_ENGINE=docker: a Docker daemon, else Podman; tools/images/engine.sh
         env sets it) with its own empty image store, started for the build and removed
         after it, then records and compares. Prints every digest and the build times.
record   the digests of the images Pants built last (dist/*.docker-info.json) for
         TARGETs and every image they are built from, on the engine the environment
         names, each :image pushed once to a registry of its own on localhost
         (Debian's docker-registry) for its manifest digest; writes them as JSON.
compare  two records: every image id and manifest digest in both must be equal.
         CI records the images its build job made and those a second runner builds,
         and compares them.

Needs root for a private Docker daemon (as engine.sh does); Podman runs as any user.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from tools.images import engine
from tools.images.imagecheck import REPO_ROOT, local_registry, service_packages

# Built outside Pants by tools/images/build.sh (generated/base-rootfs/BUILD says why).
ROOTFS = REPO_ROOT / "generated/base-rootfs/rootfs.tar"
BASE_TARGET = "deployments/docker/base:base"
PUSHED = re.compile(r"digest: (sha256:[0-9a-f]{64}) size: \d+")
RECORD_VERSION = 1


class ReproError(Exception):
    pass


@dataclass(frozen=True)
class Image:
    """One image as built: what Pants names it, its id and, for a pushed one, the digest
    of the manifest the registry got."""

    target: str
    image_id: str
    created: str
    manifest: str = ""


def run(argv: Sequence[str], env: Mapping[str, str], what: str) -> str:
    result = subprocess.run(list(argv), env=dict(env), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ReproError(f"{what} failed ({' '.join(argv)}):\n{result.stderr.strip()[-2000:]}")
    return result.stdout


def info_files(dist: Path) -> dict[str, Path]:
    """Each docker_image target Pants built into `dist`, by address: dist/<dir with
    dots>/<name>.docker-info.json is <dir>:<name>."""
    found = {}
    for info in sorted(dist.glob("*/*.docker-info.json")):
        directory = info.parent.name.replace(".", "/")
        found[f"{directory}:{info.name.removesuffix('.docker-info.json')}"] = info
    return found


def inspect(image: str, env: Mapping[str, str]) -> tuple[str, str]:
    """The full id and `created` of an image the engine holds."""
    out = run(
        ["docker", "image", "inspect", "--format", "{{.Id}} {{.Created}}", image],
        env,
        f"docker image inspect {image}",
    ).split()
    return out[0], out[1]


def push_digest(image: str, repository: str, port: int, env: Mapping[str, str]) -> str:
    """The manifest digest of `image` pushed to the registry on localhost:`port`, by the
    engine that holds it (Podman's CLI for Podman, told the registry is plain HTTP)."""
    reference = f"localhost:{port}/{repository}:repro"
    run(["docker", "tag", image, reference], env, f"docker tag {image}")
    try:
        return pushed_digest(reference, env)
    finally:  # the registry goes with this run: so does its name for the image
        run(["docker", "image", "rm", reference], env, f"docker image rm {reference}")


def pushed_digest(reference: str, env: Mapping[str, str]) -> str:
    if env.get("MERIDIAN_ENGINE") == "podman":
        with tempfile.TemporaryDirectory() as scratch:
            digest_file = Path(scratch) / "digest"
            podman = shutil.which("podman") or "podman"
            run(
                [
                    podman,
                    "push",
                    "--quiet",
                    "--tls-verify=false",
                    "--digestfile",
                    str(digest_file),
                    reference,
                ],
                env,
                f"podman push {reference}",
            )
            return digest_file.read_text().strip()
    pushed = PUSHED.search(run(["docker", "push", reference], env, f"docker push {reference}"))
    if not pushed:
        raise ReproError(f"docker push {reference} printed no manifest digest")
    return pushed[1]


def record(
    targets: Sequence[str], dist: Path, env: Mapping[str, str], also: Sequence[str] = ()
) -> list[Image]:
    """The images Pants built last into `dist` for `targets`, each pushed for its
    manifest digest, and for `also` (e.g. the images they are built from), not pushed."""
    infos = info_files(dist)
    wanted = list(dict.fromkeys([*also, *targets]))
    missing = [target for target in wanted if target not in infos]
    if missing:
        raise ReproError(
            f"no docker-info for {', '.join(missing)} in {dist}: build them first "
            "(tools/images/build.sh TARGET...)"
        )
    images = []
    with local_registry() as (port, _):
        for address in wanted:
            recorded = json.loads(infos[address].read_text())
            image_id, created = inspect(recorded["image_id"], env)
            manifest = ""
            if address in targets:
                repository = recorded["registries"][0]["repository"]
                manifest = push_digest(image_id, repository, port, env)
            images.append(Image(address, image_id, created, manifest))
    return images


def differences(first: Sequence[Image], second: Sequence[Image]) -> list[str]:
    """What differs between two records of the same targets (nothing when reproducible)."""
    theirs = {image.target: image for image in second}
    found = []
    for mine in first:
        other = theirs.get(mine.target)
        if other is None:
            found.append(f"{mine.target}: only in the first record")
            continue
        if other.image_id != mine.image_id:
            found.append(f"{mine.target}: image id {mine.image_id} != {other.image_id}")
        if other.manifest != mine.manifest:
            found.append(f"{mine.target}: manifest {mine.manifest} != {other.manifest}")
    found += [f"{t}: only in the second record" for t in theirs.keys() - {i.target for i in first}]
    return found


def print_table(first: Sequence[Image], second: Sequence[Image]) -> None:
    theirs = {image.target: image for image in second}
    for mine in first:
        other = theirs.get(mine.target, Image(mine.target, "-", "-", "-"))
        print(f"{mine.target}")
        print(f"  image id  {mine.image_id}  {'=' if mine.image_id == other.image_id else '!='}")
        print(f"            {other.image_id}")
        if mine.manifest or other.manifest:
            same = "=" if mine.manifest == other.manifest else "!="
            print(f"  manifest  {mine.manifest}  {same}")
            print(f"            {other.manifest}")
        print(f"  created   {mine.created}  /  {other.created}")


def write_record(path: Path, images: Sequence[Image]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"version": RECORD_VERSION, "images": [asdict(image) for image in images]}
    path.write_text(json.dumps(document, indent=2) + "\n")


def read_record(path: Path) -> list[Image]:
    try:
        document = json.loads(path.read_text())
        if document.get("version") != RECORD_VERSION:
            raise ReproError(f"{path}: record version {document.get('version')!r}, expected 1")
        return [Image(**image) for image in document["images"]]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ReproError(f"{path}: not a record written by `repro record`: {error}") from None


@contextmanager
def docker_info_kept(dist: Path) -> Iterator[None]:
    """dist/'s docker-info files as they were before, afterwards: they go on naming the
    images of the engine `make docker` used. (Another --pants-distdir would restart
    pantsd, twice per check.)"""
    before = {path: path.read_bytes() for path in dist.glob("*/*.docker-info.json")}
    try:
        yield
    finally:
        for path in dist.glob("*/*.docker-info.json"):
            if path not in before:
                path.unlink()
        for path, content in before.items():
            path.write_bytes(content)


@contextmanager
def empty_engine(kind: str, root: Path) -> Iterator[dict[str, str]]:
    """A private engine of `kind` (docker or podman) with an empty image store under
    `root`, stopped and removed when done; yields the environment that points at it."""
    places = engine.Places(root / "podman", root / "containers", root / "docker", root / "data")
    base_env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DOCKER_", "CONTAINERS_")) and name != "MERIDIAN_ENGINE_LOG"
    }
    try:
        cli = engine.choose_docker_cli(base_env)
        if kind == "podman":
            settings = engine.start_podman(places, base_env, cli)
        else:
            host = engine.start_dockerd(places, base_env, cli)
            log = str(places.docker_file("dockerd.log"))
            settings = engine.docker_settings(cli, host, log, places)
        wrapper = str(REPO_ROOT / "tools/images/bin")
        yield {**base_env, **settings, "PATH": f"{wrapper}{os.pathsep}{base_env['PATH']}"}
    except engine.EngineError as error:
        raise ReproError(f"the private {kind} engine: {error}") from None
    finally:
        engine.stop(places)
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for mount in sorted((m for m in mounts if m.startswith(f"{root}/")), reverse=True):
            subprocess.run(["umount", mount], capture_output=True, check=False)  # noqa: S607
        shutil.rmtree(root, ignore_errors=True)


def with_bases(targets: Sequence[str]) -> list[str]:
    """The targets and the images a service image is built from (Pants writes a
    docker-info file only for the targets it was asked to package)."""
    bases = [BASE_TARGET]
    bases += [t.removesuffix(":image") + ":runtime" for t in targets if t.endswith(":image")]
    return list(dict.fromkeys([*bases, *targets]))


def build_in_empty_store(
    kind: str, targets: Sequence[str], label: str
) -> tuple[list[Image], float]:
    """`./pants package` of the targets and their bases into a fresh store; the record
    (manifest digests of the targets) and the build's seconds."""
    root = Path(tempfile.mkdtemp(prefix="meridian-repro.", dir="/var/tmp"))
    dist = REPO_ROOT / "dist"
    with empty_engine(kind, root) as env, docker_info_kept(dist):
        print(f"repro: {label}: building {' '.join(targets)} in an empty {kind} store", flush=True)
        started = time.monotonic()
        build = subprocess.run(
            [str(REPO_ROOT / "pants"), "package", *with_bases(targets)],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.monotonic() - started
        if build.returncode != 0:
            raise ReproError(
                f"./pants package in the {label} store failed:\n{build.stderr[-3000:]}"
            )
        return record(targets, dist, env, also=with_bases(targets)), seconds


def check(targets: Sequence[str]) -> int:
    if not ROOTFS.is_file():
        raise ReproError(
            f"no {ROOTFS.relative_to(REPO_ROOT)}, which the base image adds: build the images "
            "first (make docker)"
        )
    kind = "podman" if os.environ.get("MERIDIAN_ENGINE") == "podman" else "docker"
    if kind == "docker" and os.geteuid() != 0:
        raise ReproError(
            "two empty image stores need a private Docker daemon, which only root can start "
            "here: run as root, or with MERIDIAN_ENGINE=podman (any user), or leave this "
            "check out with tools/images/test.sh --no-repro"
        )
    first, first_seconds = build_in_empty_store(kind, targets, "first")
    second, second_seconds = build_in_empty_store(kind, targets, "second")
    print_table(first, second)
    print(f"repro: builds took {first_seconds:.1f} s and {second_seconds:.1f} s ({kind})")
    found = differences(first, second)
    for difference in found:
        print(f"  DIFFERENT  {difference}")
    if found:
        print("repro: the two builds differ", file=sys.stderr)
        return 1
    print(f"repro: {len(first)} image(s) identical in two empty {kind} stores", file=sys.stderr)
    return 0


def default_targets() -> list[str]:
    packages = service_packages()
    if not packages:
        raise ReproError("no services/*/BUILD: nothing to build")
    return [f"services/{packages[0]}:image"]


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m tools.images.repro",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    check_parser = commands.add_parser("check", help="two builds in two empty stores, compared")
    check_parser.add_argument("targets", nargs="*", metavar="TARGET")
    record_parser = commands.add_parser("record", help="digests of the images built last")
    record_parser.add_argument("--out", type=Path, required=True)
    record_parser.add_argument("targets", nargs="+", metavar="TARGET")
    compare_parser = commands.add_parser("compare", help="two records must be equal")
    compare_parser.add_argument("first", type=Path)
    compare_parser.add_argument("second", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            return check(args.targets or default_targets())
        if args.command == "record":
            images = record(args.targets, REPO_ROOT / "dist", os.environ)
            write_record(args.out, images)
            for image in images:
                print(f"{image.target:48} {image.image_id} {image.manifest}")
            return 0
        first, second = read_record(args.first), read_record(args.second)
        print_table(first, second)
        found = differences(first, second)
        for difference in found:
            print(f"  DIFFERENT  {difference}")
        return 1 if found else 0
    except ReproError as error:
        print(f"repro: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
