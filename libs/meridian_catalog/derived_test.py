"""The repository's derived files match services/*/service.yaml."""

from __future__ import annotations

from pathlib import Path

from meridian_catalog.catalog import load_catalog
from meridian_catalog.derived import stale_files
from meridian_catalog.main import REFRESH_COMMAND


def test_derived_files_are_current() -> None:
    root = Path.cwd()
    stale = stale_files(root, load_catalog(root))
    assert not stale, (
        "stale derived files (edit services/*/service.yaml, then run "
        f"`{REFRESH_COMMAND}`): {', '.join(stale)}"
    )
