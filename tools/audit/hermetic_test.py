"""`make test` is hermetic: its processes cannot reach a package index, Debian's archive or
an advisory feed (pants.toml, [test].extra_env_vars). These tests run the audit's own
network-facing code against the real services and show that it fails closed instead.

Outside Pants (plain pytest), the environment is the caller's and the first test says so.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tools.audit import apt, pypi
from tools.audit.conftest import needs_apt

CLOSED = "http://127.0.0.1:9"


@pytest.mark.parametrize(
    "variable",
    ["http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "MERIDIAN_OSV_URL"],
)
def test_network_settings_point_at_a_closed_loopback_port(variable: str) -> None:
    assert os.environ.get(variable) == CLOSED, (
        f"{variable} must be {CLOSED} in tests (pants.toml [test].extra_env_vars); "
        f"it is {os.environ.get(variable)!r}"
    )


def test_package_index_settings_point_at_a_closed_loopback_port() -> None:
    assert os.environ.get("PIP_INDEX_URL") == f"{CLOSED}/simple"
    assert os.environ.get("UV_INDEX_URL") == f"{CLOSED}/simple"
    assert {"127.0.0.1", "localhost"} <= set(os.environ.get("no_proxy", "").split(","))


@pytest.mark.parametrize("index_url", [None, "https://pypi.org/simple"])
def test_the_package_index_cannot_be_reached(index_url: str | None) -> None:
    location = pypi.locate_index(index_url)
    with pytest.raises(pypi.PackageIndexError, match="could not be reached"):
        pypi.fetch_all(location, ["pip"], timeout=20)


def test_debians_archive_cannot_be_reached(tmp_path: Path) -> None:
    needs_apt()
    options = apt.private_apt(
        tmp_path, ["deb [trusted=yes] http://deb.debian.org/debian bookworm main"]
    )
    with pytest.raises(apt.AptError, match="failed"):
        apt.update_lists(options, timeout=120)
    assert not list((tmp_path / "lists").glob("*Packages*"))
