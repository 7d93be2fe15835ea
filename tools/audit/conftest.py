"""What the audit's tests run against: a Debian 12 apt (this machine's, or one of the
audit's own making) and a real HTTP package index."""

from __future__ import annotations

import contextlib
import http.server
import shutil
import subprocess
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tools.audit.apt import DEBIAN_KEYRING, missing_suites, private_debian_apt, update_lists


@dataclass(frozen=True)
class DebianApt:
    options: list[str]  # apt `-o` options; empty for this machine's own apt
    lists: Path  # the downloaded package lists it reads


@pytest.fixture(scope="session")
def debian_apt(tmp_path_factory: pytest.TempPathFactory) -> DebianApt:
    apt_cache = shutil.which("apt-cache")
    if apt_cache is None:
        pytest.skip("needs apt")
    policy = subprocess.run([apt_cache, "policy"], capture_output=True, text=True, check=True)
    if not missing_suites(policy.stdout):
        return DebianApt([], Path("/var/lib/apt/lists"))
    # GitHub's Ubuntu runners, say: Debian's own lists, verified with Debian's keyring.
    if not DEBIAN_KEYRING.is_file():
        pytest.skip("this apt is not Debian 12's and debian-archive-keyring is not installed")
    directory = tmp_path_factory.mktemp("debian-apt")
    options = private_debian_apt(directory)
    update_lists(options, timeout=300)
    return DebianApt(options, directory / "lists")


@contextlib.contextmanager
def serving_index(pages: Mapping[str, bytes]) -> Iterator[str]:
    """A package index on loopback answering each path in `pages` with its body (200) and
    anything else with 404; yields its `/simple` URL, as pip would be given it."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's handler name)
            body = pages.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple"
    finally:
        server.shutdown()
        server.server_close()
