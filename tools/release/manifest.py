"""The release manifest: the unit that flows from a main build to staging and production.

    {"schema": 1, "commit": "<40-hex commit of the build>",
     "services": {"<service>": {"image": "<repository>@sha256:<64 hex>",
                                "revision": "<12-hex commit that built the image>"}}}

A service whose inputs did not change keeps its previous entry (digest and revision),
so its pod template, and therefore its running pods, stay as they are.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tools.release.errors import ReleaseError

SCHEMA = 1
COMMIT = re.compile(r"^[0-9a-f]{40}$")
REVISION = re.compile(r"^[0-9a-f]{12}$")
IMAGE = re.compile(
    r"^(?P<repository>[a-z0-9][a-z0-9._/:-]*[a-z0-9])@(?P<digest>sha256:[0-9a-f]{64})$"
)
SERVICE = re.compile(r"^[a-z][a-z0-9-]*$")
EXPECTED = (
    '{"schema": 1, "commit": "<40 hex>", "services": {"<service>": '
    '{"image": "<repository>@sha256:<64 hex>", "revision": "<12 hex>"}}}'
)


@dataclass(frozen=True)
class ServiceImage:
    image: str
    revision: str

    def _part(self, name: str) -> str:
        match = IMAGE.match(self.image)
        if match is None:
            raise ReleaseError(f"image {self.image!r} is not <repository>@sha256:<64 hex>")
        return match.group(name)

    @property
    def repository(self) -> str:
        return self._part("repository")

    @property
    def digest(self) -> str:
        return self._part("digest")

    @property
    def version(self) -> str:
        """MERIDIAN_BUILD_VERSION: derived from the revision, so it changes only with it."""
        return f"0.0.0-dev.g{self.revision}"


@dataclass(frozen=True)
class Manifest:
    commit: str
    services: Mapping[str, ServiceImage]

    def to_json(self) -> str:
        body = {
            "schema": SCHEMA,
            "commit": self.commit,
            "services": {
                name: {"image": entry.image, "revision": entry.revision}
                for name, entry in sorted(self.services.items())
            },
        }
        return json.dumps(body, indent=2) + "\n"

    def write(self, path: Path) -> None:
        path.write_text(self.to_json())


def _problem(source: str, detail: str) -> ReleaseError:
    return ReleaseError(f"{source}: {detail}; expected {EXPECTED}")


def parse(text: str, source: str) -> Manifest:
    """A manifest from JSON text; anything malformed is refused with what was wrong."""
    try:
        body = json.loads(text)
    except json.JSONDecodeError as error:
        raise _problem(source, f"not JSON ({error})") from None
    if not isinstance(body, dict):
        raise _problem(source, f"a JSON {type(body).__name__}, not an object")
    if body.get("schema") != SCHEMA:
        raise _problem(source, f"schema is {body.get('schema')!r}, not {SCHEMA}")
    commit = body.get("commit")
    if not isinstance(commit, str) or not COMMIT.match(commit):
        raise _problem(source, f"commit {commit!r} is not a 40-hex commit id")
    services = body.get("services")
    if not isinstance(services, dict) or not services:
        raise _problem(source, "services is missing or empty")
    entries: dict[str, ServiceImage] = {}
    for name, entry in services.items():
        if not SERVICE.match(name):
            raise _problem(source, f"service name {name!r} is not lower-case with dashes")
        if not isinstance(entry, dict):
            raise _problem(source, f"services.{name} is not an object")
        image, revision = entry.get("image"), entry.get("revision")
        if not isinstance(image, str) or not IMAGE.match(image):
            raise _problem(source, f"services.{name}.image {image!r} is not pinned by digest")
        if not isinstance(revision, str) or not REVISION.match(revision):
            raise _problem(source, f"services.{name}.revision {revision!r} is not 12 hex")
        entries[name] = ServiceImage(image=image, revision=revision)
    return Manifest(commit=commit, services=entries)


def load(path: Path) -> Manifest:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ReleaseError(f"release manifest {path} does not exist") from None
    return parse(text, str(path))


def merge(
    commit: str,
    built: Mapping[str, str],
    previous: Manifest | None,
    services: list[str],
) -> Manifest:
    """The manifest of commit: the images built for it, every other service as before.

    built maps service -> image@digest pushed by this commit's build. A rebuilt image
    whose digest equals the previous one keeps the previous revision: same bytes, same
    pod template, no rollout.
    """
    if not COMMIT.match(commit):
        raise ReleaseError(f"--commit {commit!r} is not a 40-hex commit id")
    unknown = sorted(set(built) - set(services))
    if unknown:
        raise ReleaseError(f"built images for {unknown}, which are not services {services}")
    entries: dict[str, ServiceImage] = {}
    for name in services:
        old = previous.services.get(name) if previous else None
        if name in built:
            if not IMAGE.match(built[name]):
                raise ReleaseError(
                    f"built image for {name} {built[name]!r} is not <repository>@sha256:<64 hex>"
                )
            if old is not None and old.image == built[name]:
                entries[name] = old
            else:
                entries[name] = ServiceImage(image=built[name], revision=commit[:12])
        elif old is not None:
            entries[name] = old
        else:
            raise ReleaseError(
                f"{name} was not built and the previous manifest has no image for it: "
                "build every service (no previous staging deploy to carry images from)"
            )
    return Manifest(commit=commit, services=entries)
