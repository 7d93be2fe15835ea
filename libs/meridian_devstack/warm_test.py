"""Byte-compiling a PEX virtualenv's packages, which it links rather than copies."""

import site
from pathlib import Path

import pytest

from meridian_devstack.warm import installed_packages, main


@pytest.fixture()
def linked_site_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # As a PEX virtualenv: site-packages links each package to the PEX's installed wheel.
    wheel = tmp_path / "installed_wheels/ledger-1.0-py3-none-any.whl/ledger"
    wheel.mkdir(parents=True)
    (wheel / "__init__.py").write_text("ENTRIES = 2\n")
    site_packages = tmp_path / "venv/site-packages"
    site_packages.mkdir(parents=True)
    (site_packages / "ledger").symlink_to(wheel)
    (site_packages / "ledger-1.0.dist-info").mkdir()
    monkeypatch.setattr(site, "getsitepackages", lambda: [str(site_packages)])
    return wheel


def test_packages_are_found_where_they_are_linked_from(linked_site_packages: Path) -> None:
    assert installed_packages() == [linked_site_packages.resolve()]


def test_each_package_is_compiled_in_place(linked_site_packages: Path) -> None:
    assert main() == 0
    assert list((linked_site_packages / "__pycache__").glob("__init__.*.pyc"))


def test_a_package_that_does_not_compile_fails(linked_site_packages: Path) -> None:
    (linked_site_packages / "broken.py").write_text("def (:\n")
    assert main() == 1
