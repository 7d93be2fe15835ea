"""An image's configuration without the build's time, so that its id (the config's
digest) and the manifest a registry gets depend on its content alone.

Engines write the time of the build into the configuration: `created`, and each history
entry's `created`. BuildKit 0.11 and newer take them from the SOURCE_DATE_EPOCH build
argument, which tools/images/bin/docker passes; Debian 12's Docker 20.10 (older BuildKit),
the classic builder and Podman 4.3 ignore it, and they also record the build
container and the intermediate image of the last step (`container`, `container_config`,
`parent`, the config's `Hostname` and `Image`, buildah's history comments "FROM <image>"),
which differ on every build. So after every build the image is rewritten: `docker
save`, every timestamp set to the epoch, those per-build values dropped, the
configuration serialised canonically (sorted keys, no spaces), `docker load` under the
build's tags. The layers stay as they are (their files' mtimes are
fixed already, deployments/docker/layers.py); the engine's config is replaced only where
it differs, so the same content gives the same id whatever the engine honoured.

Standard library only: tools/images/bin/docker runs it before anything is installed.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# What an image says about when it was made: nothing (1970-01-01, as its layers' files).
EPOCH = "1970-01-01T00:00:00Z"
SOURCE_DATE_EPOCH = "0"
# The classic builder's and buildah's record of the container the last step ran in and
# of the step's own image (`parent`), which differ on every build.
PER_BUILD_KEYS = ("container", "container_config", "parent")
# The same in the runtime configuration: the build container's host name, the step image.
PER_BUILD_CONFIG = ("Hostname", "Image")
# buildah's history comment naming the image a step ran on: an intermediate image's id,
# or the FROM image's tag, which Pants derives from its build environment (the engine's
# socket among it). The layers and the rest of the history say what the image is.
STEP_IMAGE_COMMENT = re.compile(r"FROM \S+")
MANIFEST = "manifest.json"


class NormaliseError(Exception):
    """An archive or engine answer that does not let the image be rewritten."""


@dataclass(frozen=True)
class Rewrite:
    before: str  # the image id the engine built, sha256:<hex>
    after: str  # the id of the normalised image, sha256:<hex>

    @property
    def changed(self) -> bool:
        return self.before != self.after


def normalised(config: Mapping[str, Any]) -> dict[str, Any]:
    """The configuration with every timestamp at the epoch and nothing of the build's
    containers or intermediate images."""
    result = {key: value for key, value in config.items() if key not in PER_BUILD_KEYS}
    result["created"] = EPOCH
    runtime = config.get("config")
    if isinstance(runtime, Mapping):
        result["config"] = {
            key: "" if key in PER_BUILD_CONFIG else value for key, value in runtime.items()
        }
    history = config.get("history")
    if history is not None:
        if not isinstance(history, list):
            raise NormaliseError(f"the image's history is not a list: {history!r:.80}")
        result["history"] = [normalised_step(entry) for entry in history]
    return result


def normalised_step(entry: Mapping[str, Any]) -> dict[str, Any]:
    step = {**entry, "created": EPOCH}
    if STEP_IMAGE_COMMENT.fullmatch(str(step.get("comment", ""))):
        del step["comment"]
    return step


def canonical(config: Mapping[str, Any]) -> bytes:
    return json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def image_id(config_bytes: bytes) -> str:
    return f"sha256:{hashlib.sha256(config_bytes).hexdigest()}"


def read_member(archive: tarfile.TarFile, name: str) -> bytes:
    try:
        member = archive.extractfile(name)
    except KeyError:
        member = None
    if member is None:
        raise NormaliseError(f"the saved image has no file {name}")
    return member.read()


def rewrite_archive(saved: Path, output: Path, tags: Sequence[str]) -> Rewrite:
    """Writes to `output` the `docker save` archive `saved` (one image) as a docker-archive
    with the normalised configuration, named by `tags`."""
    with tarfile.open(saved) as archive:
        entries = json.loads(read_member(archive, MANIFEST))
        if not isinstance(entries, list) or len(entries) != 1:
            raise NormaliseError(f"expected one image in the saved archive, found {entries!r:.200}")
        entry = entries[0]
        config_bytes = read_member(archive, entry["Config"])
        layers: list[str] = list(entry["Layers"])
        new_bytes = canonical(normalised(json.loads(config_bytes)))
        rewrite = Rewrite(image_id(config_bytes), image_id(new_bytes))
        if not rewrite.changed:
            return rewrite
        config_name = f"{rewrite.after.removeprefix('sha256:')}.json"
        manifest = [{"Config": config_name, "RepoTags": list(tags) or None, "Layers": layers}]
        with tarfile.open(output, "w") as target:
            # A layer can repeat (empty ones), and be a link to another (newer engines
            # save OCI blobs): each is written once, as a file.
            for layer in dict.fromkeys(layers):
                add_file(target, layer, read_member(archive, layer))
            add_file(target, config_name, new_bytes)
            add_file(target, MANIFEST, json.dumps(manifest, separators=(",", ":")).encode())
    return rewrite


def add_file(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    archive.addfile(info, io.BytesIO(data))


def normalise_image(cli: str, image: str, tags: Sequence[str], env: Mapping[str, str]) -> Rewrite:
    """Rewrites the engine's image `image` in place: the normalised image gets `tags`."""

    def docker(*args: str) -> str:
        result = subprocess.run(
            [cli, *args], env=dict(env), capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise NormaliseError(f"docker {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    with tempfile.TemporaryDirectory(prefix="meridian-normalise.") as scratch:
        saved, output = Path(scratch) / "saved.tar", Path(scratch) / "normalised.tar"
        docker("save", "--output", str(saved), image)
        rewrite = rewrite_archive(saved, output, tags)
        if not rewrite.changed:
            return rewrite
        docker("load", "--quiet", "--input", str(output))
    stored = docker("image", "inspect", "--format", "{{.Id}}", rewrite.after).strip()
    if stored != rewrite.after:
        raise NormaliseError(
            f"the engine stored the normalised image as {stored or 'nothing'}, not {rewrite.after}"
        )
    for tag in tags:
        named = docker("image", "inspect", "--format", "{{.Id}}", tag).strip()
        if named != rewrite.after:
            raise NormaliseError(f"{tag} names {named}, not the normalised {rewrite.after}")
    return rewrite
