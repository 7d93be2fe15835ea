"""What the audit's tests run against: a Debian archive on disk read by a real apt, and a
real HTTP package index on loopback. Neither reaches the network."""

from __future__ import annotations

import contextlib
import email.utils
import gzip
import hashlib
import http.server
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tools.audit.apt import private_apt, update_lists
from tools.audit.exceptions import normalize_name


@dataclass(frozen=True)
class Deb:
    name: str
    version: str
    architecture: str = "amd64"
    # changelog.Debian as the package ships it (newest entry first); empty for none.
    changelog: str = ""


def build_deb(directory: Path, deb: Deb) -> Path:
    """A real .deb (dpkg-deb) holding the package's changelog.Debian.gz."""
    root = directory / "build"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {deb.name}\nVersion: {deb.version}\nArchitecture: {deb.architecture}\n"
        "Maintainer: Meridian <platform@meridian.invalid>\nDescription: test package\n"
    )
    if deb.changelog:
        doc = root / "usr" / "share" / "doc" / deb.name
        doc.mkdir(parents=True)
        (doc / "changelog.Debian.gz").write_bytes(gzip.compress(deb.changelog.encode(), mtime=0))
    # As in Debian's pool: the file name leaves out the epoch.
    version = deb.version.split(":", 1)[-1]
    path = directory / f"{deb.name}_{version}_{deb.architecture}.deb"
    subprocess.run(
        [tool("dpkg-deb"), "--root-owner-group", "--build", str(root), str(path)],
        check=True,
        capture_output=True,
    )
    shutil.rmtree(root)
    return path


def debian_archive(root: Path, suites: Mapping[str, Sequence[Deb]]) -> list[str]:
    """A Debian archive on disk: one flat repository per suite (its Release names the suite
    as its codename, as Debian's do), read by apt over file:. Returns the sources.list
    lines; apt trusts them without signatures."""
    lines = []
    for suite, debs in suites.items():
        directory = root / suite
        directory.mkdir(parents=True)
        stanzas = []
        for deb in debs:
            path = build_deb(directory, deb)
            data = path.read_bytes()
            stanzas.append(
                f"Package: {deb.name}\nVersion: {deb.version}\nArchitecture: {deb.architecture}\n"
                f"Maintainer: Meridian <platform@meridian.invalid>\nFilename: ./{path.name}\n"
                f"Size: {len(data)}\nSHA256: {hashlib.sha256(data).hexdigest()}\n"
                "Description: test package\n"
            )
        packages = "\n".join(stanzas).encode()
        (directory / "Packages").write_bytes(packages)
        (directory / "Release").write_text(
            f"Origin: Debian\nLabel: Debian\nSuite: {suite}\nCodename: {suite}\n"
            f"Date: {email.utils.formatdate(usegmt=True)}\n"
            f"SHA256:\n {hashlib.sha256(packages).hexdigest()} {len(packages)} Packages\n"
        )
        lines.append(f"deb [trusted=yes] file:{directory} ./")
    return lines


@dataclass(frozen=True)
class DebianApt:
    options: list[str]  # apt `-o` options for a private apt state
    lists: Path  # the package lists it read


def tool(program: str) -> str:
    """The path of one of Debian's package tools; skips the test where there is none."""
    path = shutil.which(program)
    if path is None:
        pytest.skip(f"needs Debian's apt ({program} is not installed)")
    return path


def needs_apt() -> None:
    for program in ("apt-get", "apt-cache", "dpkg", "dpkg-deb"):
        tool(program)


# bookworm as the lock was made, and a newer libc6 in bookworm-updates.
BOOKWORM = {
    "bookworm": [Deb("libc6", "2.36-9+deb12u10"), Deb("tzdata", "2025b-0+deb12u1", "all")],
    "bookworm-updates": [Deb("libc6", "2.36-9+deb12u13")],
    "bookworm-security": [Deb("tzdata", "2026a-0+deb12u1", "all")],
}


def apt_over(tmp_path: Path, suites: Mapping[str, Sequence[Deb]]) -> DebianApt:
    needs_apt()
    sources = debian_archive(tmp_path / "archive", suites)
    options = private_apt(tmp_path / "apt", sources)
    update_lists(options, timeout=120)
    return DebianApt(options, tmp_path / "apt" / "lists")


@pytest.fixture()
def debian_apt(tmp_path: Path) -> DebianApt:
    """A private apt state reading a local bookworm, bookworm-updates and bookworm-security."""
    return apt_over(tmp_path, BOOKWORM)


class _Handler(http.server.BaseHTTPRequestHandler):
    def reply(self, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@contextlib.contextmanager
def _serving(handler: type[_Handler]) -> Iterator[str]:
    """A real HTTP server on a free loopback port; yields its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def serving_index(pages: Mapping[str, bytes]) -> Iterator[str]:
    """A package index on loopback answering each path in `pages` with its body (200) and
    anything else with 404; yields its `/simple` URL, as pip would be given it."""

    class Handler(_Handler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's handler name)
            body = pages.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.reply(body)

    with _serving(Handler) as url:
        yield f"{url}/simple"


@contextlib.contextmanager
def serving_osv(records: Sequence[Mapping[str, Any]], page_size: int = 2) -> Iterator[str]:
    """OSV's query API on loopback (`POST /v1/query`): answers a package's query with every
    record naming it, `page_size` at a time with `next_page_token`, as OSV pages; yields
    its base URL."""

    def naming(name: str) -> list[Mapping[str, Any]]:
        key = normalize_name(name)
        return [
            record
            for record in records
            if any(
                normalize_name(str(entry["package"]["name"])) == key
                for entry in record.get("affected", [])
            )
        ]

    class Handler(_Handler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's handler name)
            length = int(self.headers.get("Content-Length", "0"))
            query = json.loads(self.rfile.read(length))
            if self.path != "/v1/query" or query["package"].get("ecosystem") != "PyPI":
                self.send_error(400)
                return
            found = naming(query["package"]["name"])
            start = int(query.get("page_token") or 0)
            answer: dict[str, object] = {"vulns": found[start : start + page_size]}
            if start + page_size < len(found):
                answer["next_page_token"] = str(start + page_size)
            self.reply(json.dumps(answer).encode())

    with _serving(Handler) as url:
        yield url


def osv_record(
    advisory_id: str,
    package: str,
    events: Sequence[Mapping[str, str]],
    aliases: Sequence[str] = (),
    modified: str = "2026-11-30T00:00:00Z",
    **extra: object,
) -> dict[str, object]:
    """An OSV record with one PyPI ECOSYSTEM range."""
    return {
        "id": advisory_id,
        "modified": modified,
        "aliases": list(aliases),
        "summary": f"test advisory {advisory_id}",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": package},
                "ranges": [{"type": "ECOSYSTEM", "events": list(events)}],
            }
        ],
        **extra,
    }
