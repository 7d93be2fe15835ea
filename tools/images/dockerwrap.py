"""The `docker` that Pants runs (tools/images/bin/docker, through
[docker].executable_search_paths in pants.toml): the real docker CLI, except for builds.

- Every image a build makes is rewritten without the build's time (normalise.py): its
  id, and the manifest a registry gets, then depend on its content alone, on every
  engine. BuildKit builds also get SOURCE_DATE_EPOCH, which BuildKit 0.11 and newer use
  for the same timestamps. Pants reads the normalised image's id.
- With a daemon that has no networking (MERIDIAN_BUILD_NETWORK=none, set by engine.py for
  the Docker daemon it starts), builds run with --network none: no RUN step of Meridian's
  Dockerfiles needs a network.
- Pants 2.17 reads a BuildKit build's image id from its progress output, from a line
  "writing image sha256:<id> done", which BuildKit sometimes prints with the step's time
  before "done"; Pants then records the image as <unknown>. The id comes from --iidfile
  instead, printed in the form Pants reads.
- Pants kills a `docker build` it no longer needs (its inputs changed mid-run, or a
  stale build it restarted). With a Docker daemon that is harmless. Podman 4.3's API
  server, though, panics when a multi-stage build's client goes away at the wrong
  moment (buildah "semaphore: released more than held") and takes every other build
  down with it. So with Podman (MERIDIAN_ENGINE=podman) a build runs in a session of its
  own, writing to files: killing this wrapper then leaves the build to finish, and
  nothing disconnects. A finished build is remembered (its arguments, environment and
  context files -> image id) and answered from that record while its tags still name
  the image: Pants repeats the previous build of every image at the start of a run.

Standard library only: it runs before anything is installed. bin/docker runs it as
`python3 -m tools.images.dockerwrap` with the repository on PYTHONPATH.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from tools.images import normalise

WRAPPER_DIR = Path(__file__).resolve().parent / "bin"
# Environment that changes between identical builds.
VOLATILE_ENV = frozenset({"PWD", "OLDPWD", "SHLVL", "_"})
# Pants' own script in the build's working directory.
PANTS_RUNNER = "__run.sh"
MEMO_DAYS = 14
BUILT = re.compile(r"^Successfully built ([0-9a-f]+)$", re.MULTILINE)
# Runs the build detached, its output in files; cleans up if nobody is left to read it.
DETACHED_BUILD = """output="$1" waiter="$2"
shift 2
"$@" >"${output}/stdout" 2>"${output}/stderr"
status=$?
kill -0 "${waiter}" 2>/dev/null || rm -rf "${output}"
exit "${status}"
"""


def real_cli(env: Mapping[str, str]) -> str:
    """MERIDIAN_DOCKER_CLI, else the first docker on PATH that is not this wrapper."""
    chosen = env.get("MERIDIAN_DOCKER_CLI", "")
    if chosen:
        return chosen
    for directory in env.get("PATH", "").split(os.pathsep):
        candidate = Path(directory or ".") / "docker"
        executable = candidate.is_file() and os.access(candidate, os.X_OK)
        if executable and candidate.parent.resolve() != WRAPPER_DIR.resolve():
            return str(candidate)
    raise SystemExit("docker (tools/images/bin): no docker CLI found on PATH")


def reads_stdin(args: Sequence[str]) -> bool:
    """The build reads its Dockerfile (-f -) or context (-) from stdin, which a detached
    build would not have."""
    for previous, argument in zip(["", *args[:-1]], args, strict=True):
        if argument == "--file=-" or (argument == "-" and previous in ("-f", "--file")):
            return True
    return bool(args) and args[-1] == "-"


def with_network(args: Sequence[str], env: Mapping[str, str]) -> list[str]:
    network = env.get("MERIDIAN_BUILD_NETWORK", "")
    if args[:1] == ["build"] and network:
        return ["build", f"--network={network}", *args[1:]]
    return list(args)


def build_tags(args: Sequence[str]) -> list[str]:
    """The tags a build gives its image (--tag NAME, --tag=NAME, -t NAME)."""
    tags = []
    for index, argument in enumerate(args):
        if argument in ("--tag", "-t") and index + 1 < len(args):
            tags.append(args[index + 1])
        elif argument.startswith("--tag="):
            tags.append(argument.removeprefix("--tag="))
    return tags


def build_key(args: Sequence[str], env: Mapping[str, str], context: Path) -> str:
    """What decides a build's result: its arguments, its environment (Pants passes the
    build arguments' values and upstream image ids there) and every file of its context."""
    digest = hashlib.sha256()
    for argument in args:
        digest.update(argument.encode() + b"\0")
    for name in sorted(env):
        if name not in VOLATILE_ENV:
            digest.update(f"{name}={env[name]}\n".encode())
    files = sorted(
        path for path in context.rglob("*") if path.is_file() and path.name != PANTS_RUNNER
    )
    for path in files:
        digest.update(f"{path.relative_to(context)}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:32]


def still_built(real: str, image: str, args: Sequence[str]) -> bool:
    """Each of the build's tags still names the image it made."""
    for tag in build_tags(args):
        found = subprocess.run(
            [real, "image", "inspect", "--format", "{{.Id}}", tag],
            capture_output=True,
            text=True,
            check=False,
        )
        if not found.stdout.strip().startswith(f"sha256:{image}"):
            return False
    return True


def with_source_date_epoch(args: Sequence[str]) -> list[str]:
    """A BuildKit build's arguments with SOURCE_DATE_EPOCH, the time its image names."""
    return [args[0], "--build-arg", f"SOURCE_DATE_EPOCH={normalise.SOURCE_DATE_EPOCH}", *args[1:]]


def normalised(real: str, image: str, args: Sequence[str]) -> str:
    """The id of the built image rewritten without the build's time (normalise.py)."""
    started = time.monotonic()
    try:
        rewrite = normalise.normalise_image(real, image, build_tags(args), os.environ)
    except normalise.NormaliseError as error:
        raise SystemExit(
            f"docker (tools/images/bin): the image {image} was built, but could not be "
            f"rewritten without its build time: {error}"
        ) from None
    # Shown by `./pants --docker-build-verbose package ...`.
    print(
        f"#0 normalised {rewrite.before} -> {rewrite.after} "
        f"in {time.monotonic() - started:.2f} s",
        file=sys.stderr,
    )
    return rewrite.after


def buildkit_build(real: str, args: Sequence[str]) -> int:
    with tempfile.TemporaryDirectory() as scratch:
        iidfile = Path(scratch) / "iid"
        build_args = with_source_date_epoch(args)
        status = subprocess.run(
            [real, "build", "--iidfile", str(iidfile), *build_args[1:]], check=False
        )
        if status.returncode != 0:
            return status.returncode
        built = iidfile.read_text().strip()
    image = normalised(real, built, args)
    if image != built:
        # BuildKit keeps its cache apart from the images: the engine's own version of
        # this one is of no further use (--no-prune: its parents stay).
        subprocess.run([real, "image", "rm", "--no-prune", built], capture_output=True, check=False)
    print(f"#0 writing image {image} done", file=sys.stderr)
    return 0


def with_normalised_id(real: str, stdout: str, args: Sequence[str]) -> str:
    """A classic build's output, its last line naming the normalised image. The engine's
    own image stays: the classic builder and Podman find their cache through it."""
    built = BUILT.findall(stdout)
    if not built:
        raise SystemExit("docker (tools/images/bin): the build printed no image id")
    image = normalised(real, built[-1], args)
    return f"{stdout}Successfully built {image.removeprefix('sha256:')}\n"


def classic_build(real: str, args: Sequence[str]) -> int:
    build = subprocess.run([real, *args], stdout=subprocess.PIPE, text=True, check=False)
    if build.returncode != 0:
        sys.stdout.write(build.stdout)
        return build.returncode
    sys.stdout.write(with_normalised_id(real, build.stdout, args))
    return 0


def detached_build(real: str, args: Sequence[str], memo: Path | None, key: str) -> int:
    setsid, bash = shutil.which("setsid"), shutil.which("bash")
    if not (setsid and bash):
        raise SystemExit("docker (tools/images/bin): a detached build needs setsid and bash")
    output = Path(tempfile.mkdtemp())
    build = subprocess.Popen(
        [setsid, bash, "-c", DETACHED_BUILD, "build", str(output), str(os.getpid()), real, *args],
        stdin=subprocess.DEVNULL,
    )
    status = build.wait()
    stdout = (output / "stdout").read_text(errors="replace")
    sys.stderr.write((output / "stderr").read_text(errors="replace"))
    if status == 0:
        stdout = with_normalised_id(real, stdout, args)
    sys.stdout.write(stdout)
    built = BUILT.findall(stdout)
    if status == 0 and memo is not None and built:
        memo.mkdir(parents=True, exist_ok=True)
        for suffix, text in ((".out", stdout), (".id", built[-1] + "\n")):
            partial = memo / f"{key}{suffix}.tmp"
            partial.write_text(text)
            partial.replace(memo / f"{key}{suffix}")
        # Records of builds nobody repeated for two weeks go.
        too_old = time.time() - MEMO_DAYS * 86400
        for record in memo.iterdir():
            if record.stat().st_mtime < too_old:
                record.unlink(missing_ok=True)
    shutil.rmtree(output, ignore_errors=True)
    return status


def main(argv: Sequence[str]) -> int:
    env = os.environ
    real = real_cli(env)
    args = with_network(argv, env)
    if args[:1] != ["build"] or reads_stdin(args):
        os.execv(real, [real, *args])  # noqa: S606 # the real docker CLI, as asked
    if env.get("DOCKER_BUILDKIT") == "1":
        return buildkit_build(real, args)
    if env.get("MERIDIAN_ENGINE") != "podman" or not shutil.which("setsid"):
        return classic_build(real, args)
    memo, key = None, ""
    host = env.get("DOCKER_HOST", "")
    if host.startswith("unix://") and host.endswith("/podman.sock"):
        memo = Path(host.removeprefix("unix://")).parent / "builds"
        key = build_key(args, env, Path.cwd())
        image, out = memo / f"{key}.id", memo / f"{key}.out"
        if image.is_file() and out.is_file() and still_built(real, image.read_text().strip(), args):
            image.touch()
            out.touch()
            sys.stdout.write(out.read_text())
            print("(the same build as before: the engine was not asked again)", file=sys.stderr)
            return 0
    return detached_build(real, args, memo, key)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
