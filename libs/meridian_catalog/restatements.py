"""Restatements of what the catalog knows, outside the catalog.

The catalog (this package and the declaration model in meridian_chassis.declaration)
is the one place that turns a service's package into its name and knows its ports.
Everything else reads the catalog or a file generated from it. A restatement is
either
  - a name conversion: `current_account` <-> `current-account` written out again, as
    Python or Starlark `.replace("_", "-")`, bash `${var//_/-}`, `tr _ -` or sed
    `s/_/-/`; or
  - a literal service port: a number that is a service's declared host port or the
    container port every service listens on.
Documentation (Markdown) may quote ports in prose and examples; it is not scanned.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from meridian_catalog.derived import CATALOG_JSON, GENERATED_HEADER
from meridian_chassis.declaration import CONTAINER_PORT, DECLARATION_FILE, Declaration

NAME_CONVERSION = "name conversion"
SERVICE_PORT = "service port"

_DASH_OR_UNDERSCORE = r"[-_]"
_NAME_CONVERSIONS = re.compile(
    "|".join(
        [
            # Python, Starlark: .replace("_", "-"), .replace('-', '_')
            rf"""\.replace\(\s*(['"]){_DASH_OR_UNDERSCORE}\1\s*,\s*(['"]){_DASH_OR_UNDERSCORE}\2\s*\)""",
            # bash: ${package//_/-}, ${name//-/_}
            rf"\$\{{[A-Za-z_][A-Za-z0-9_]*//{_DASH_OR_UNDERSCORE}/{_DASH_OR_UNDERSCORE}\}}",
            # tr _ -, tr '-' '_'
            rf"""\btr\s+(['"]?){_DASH_OR_UNDERSCORE}\3\s+(['"]?){_DASH_OR_UNDERSCORE}\4(?=\s|\)|$)""",
            # sed s/_/-/g, s|-|_|
            rf"\bs([/|#,]){_DASH_OR_UNDERSCORE}\5{_DASH_OR_UNDERSCORE}\5",
        ]
    )
)
# Where the catalog itself lives, and what it writes: they may say what it knows.
CATALOG_PATHS = ("libs/meridian_catalog/", "libs/meridian_chassis/declaration", CATALOG_JSON)
# Not scanned: prose, lockfiles (hashes), images and other binaries.
SKIPPED_SUFFIXES = (".md", ".lock", ".png", ".svg", ".tar", ".pex", ".pyc", ".whl")
SKIPPED_DIRS = {".git", "dist", ".pants.d", ".pids", ".local", "__pycache__", "node_modules"}


@dataclass(frozen=True, order=True)
class Restatement:
    path: str
    line: int
    kind: str
    text: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.kind}: {self.text.strip()}"


def service_ports(catalog: Iterable[Declaration]) -> set[int]:
    """Every port a service is known by: its host port and the container port."""
    return {CONTAINER_PORT, *(declaration.port for declaration in catalog)}


def port_pattern(ports: Iterable[int]) -> re.Pattern[str]:
    # A whole number: not part of a longer number, word, version or digest.
    alternatives = "|".join(str(port) for port in sorted(ports))
    return re.compile(rf"(?<![\w.])(?:{alternatives})(?![\w]|\.\d)")


def is_exempt(path: str, text: str) -> bool:
    """The catalog's own files, the declarations it reads and the files it generates."""
    declaration = path.startswith("services/") and path.endswith("/" + DECLARATION_FILE)
    return path.startswith(CATALOG_PATHS) or declaration or text.startswith(GENERATED_HEADER)


def scan_text(path: str, text: str, ports: re.Pattern[str]) -> Iterator[Restatement]:
    for number, line in enumerate(text.splitlines(), start=1):
        if _NAME_CONVERSIONS.search(line):
            yield Restatement(path, number, NAME_CONVERSION, line)
        if ports.search(line):
            yield Restatement(path, number, SERVICE_PORT, line)


def candidate_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part in SKIPPED_DIRS for part in relative.parts[:-1]):
            continue
        if path.is_file() and not path.name.endswith(SKIPPED_SUFFIXES):
            yield path


def find_restatements(root: Path, catalog: Iterable[Declaration]) -> list[Restatement]:
    """Every restatement in the text files under root, outside the catalog."""
    ports = port_pattern(service_ports(catalog))
    found: list[Restatement] = []
    for path in candidate_files(root):
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        relative = str(path.relative_to(root))
        if not is_exempt(relative, text):
            found += scan_text(relative, text, ports)
    return sorted(found)
