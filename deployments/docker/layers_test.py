"""`layers.py srcs`, as Pants runs it for every service image: a loose PEX in, the
sources layer tarballs out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

LAYERS = Path(__file__).with_name("layers.py")
SITE = "app/lib/python3.11/site-packages"


@pytest.fixture()
def loose_pex(tmp_path: Path) -> Path:
    pex = tmp_path / "image-srcs.pex"
    (pex / ".bootstrap/pex").mkdir(parents=True)
    (pex / ".bootstrap/pex/pex.py").write_text("")
    (pex / "__main__.py").write_text("")
    (pex / "PEX-INFO").write_text("{}")
    (pex / "ledger").mkdir()
    (pex / "ledger/__init__.py").write_text("")
    (pex / "ledger/main.py").write_text("def main() -> None:\n    pass\n")
    (pex / "ledger/main.pyi").write_text("def main() -> None: ...\n")
    return pex


SOURCE_URL = "https://example.invalid/meridian"


def build(pex: Path, out: Path, revision: str = "0abc123") -> tuple[Path, Path]:
    """Runs it as Pants does (adhoc_tool), with a commit's metadata in the environment."""
    layer, dev = out / "layer.tar", out / "layer-dev.tar"
    env = {
        **os.environ,
        "MERIDIAN_BUILD_REVISION": revision,
        "MERIDIAN_BUILD_VERSION": f"0.0.0-dev.g{revision}",
        "MERIDIAN_BUILD_DATE": "2026-12-01T00:00:00Z",
        "MERIDIAN_SOURCE_URL": SOURCE_URL,
    }
    args = ["srcs", str(pex), "/app", str(layer), f"--dev-out={dev}", "--service=ledger"]
    result = subprocess.run(
        [sys.executable, str(LAYERS), *args], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return layer, dev


def members(layer: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(layer) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_the_layer_holds_the_code_its_bytecode_and_the_service_name(
    loose_pex: Path, tmp_path: Path
) -> None:
    layer, _ = build(loose_pex, tmp_path)
    names = set(members(layer))
    assert f"{SITE}/ledger/main.py" in names
    assert f"{SITE}/ledger/__pycache__/main.cpython-311.pyc" in names
    assert not [n for n in names if "bootstrap" in n or n.endswith(("PEX-INFO", ".pyi"))]
    assert not [n for n in names if n.startswith(f"{SITE}/__main__")]
    with tarfile.open(layer) as tar:
        build_json = tar.extractfile("etc/meridian/build.json")
        assert build_json is not None
        info = json.load(build_json)
    # Nothing of the commit: a deployment injects the revision.
    assert info == {"service": "ledger", "source": SOURCE_URL}


def test_the_same_input_gives_the_same_bytes_on_any_commit(loose_pex: Path, tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    first, _ = build(loose_pex, tmp_path / "one", revision="0abc123")
    (loose_pex / "ledger/main.py").touch()  # a new mtime, the same content
    second, _ = build(loose_pex, tmp_path / "two", revision="fff4567-dirty")
    assert first.read_bytes() == second.read_bytes()
    assert {(m.uid, m.gid, m.mtime) for m in members(first).values()} == {(0, 0, 0)}


def test_the_dev_layer_gives_the_packages_to_the_service_user(
    loose_pex: Path, tmp_path: Path
) -> None:
    layer, dev = build(loose_pex, tmp_path)
    owners = {name: (m.uid, m.gid) for name, m in members(dev).items()}
    assert set(owners) == set(members(layer)), "the same entries as the image's layer"
    assert owners[f"{SITE}/ledger"] == (65532, 65532)
    assert owners[f"{SITE}/ledger/main.py"] == (65532, 65532)
    assert owners[SITE] == (0, 0)
    assert owners["etc/meridian/build.json"] == (0, 0)


def test_sourceless_wheels_import_and_tracebacks_name_file_and_line(tmp_path: Path) -> None:
    from deployments.docker.layers import sourceless

    package = tmp_path / "site/wheel"
    (package / "__pycache__").mkdir(parents=True)
    (package / "__pycache__/stale.cpython-311.pyc").write_bytes(b"")
    (package / "__init__.py").write_text("")
    (package / "fails.py").write_text("def explode():\n    raise ValueError('boom')\n")
    (package / "data.txt").write_text("kept")

    compiled, removed = sourceless(tmp_path / "site")

    assert (compiled, removed) == (2, len("def explode():\n    raise ValueError('boom')\n"))
    assert sorted(p.name for p in package.iterdir()) == ["__init__.pyc", "data.txt", "fails.pyc"]
    code = "import wheel.fails as f\ntry:\n    f.explode()\nexcept ValueError:\n    import traceback; traceback.print_exc()\n"
    result = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            code.replace(
                "import wheel",
                f"import sys; sys.path.insert(0, {str(tmp_path / 'site')!r}); import wheel",
            ),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert f'File "{package}/fails.py", line 2, in explode' in result.stderr
