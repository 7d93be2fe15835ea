"""The settings file ./pants compares and Pants reads."""

import hashlib
from pathlib import Path

from tools.bootstrap.layout import PEX_VERSION, PROTOC_VERSION, Layout
from tools.bootstrap.pantsrc import PENDING_STAMP, PLATFORMS, pants_rc


def test_pants_rc_names_the_local_tools_by_hash_and_starts_with_the_stamp(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "repo", tmp_path / "install")
    layout.install_dir.mkdir(parents=True)
    layout.pex.write_bytes(b"pex cli")
    layout.protoc_zip.write_bytes(b"protoc zip")
    stamp = "# meridian-bootstrap 0123456789abcdef /etc/ssl/ca.pem"
    text = pants_rc(layout, stamp, "/etc/ssl/ca.pem", "/opt/py/bin/python3.11")

    # ./pants reads the first line back: the stamp, a space, the CPython 3.11.
    first = text.splitlines()[0]
    assert first.rsplit(" ", 1) == [stamp, "/opt/py/bin/python3.11"]
    assert '[GLOBAL]\nca_certs_path = "/etc/ssl/ca.pem"' in text
    assert f'url_template = "file://{layout.pex}"' in text
    assert f'url_template = "file://{layout.protoc_zip}"' in text
    for content, version in ((b"pex cli", f"v{PEX_VERSION}"), (b"protoc zip", PROTOC_VERSION)):
        digest = hashlib.sha256(content).hexdigest()
        for platform in PLATFORMS:
            assert f'"{version}|{platform}|{digest}|{len(content)}",' in text
    assert 'search_path = ["/opt/py/bin"]' in text


def test_without_a_ca_bundle_pants_keeps_its_own_roots(tmp_path: Path) -> None:
    layout = Layout(tmp_path, tmp_path)
    layout.pex.write_bytes(b"pex")
    layout.protoc_zip.write_bytes(b"zip")
    assert "ca_certs_path" not in pants_rc(layout, "# stamp", "", "/usr/bin/python3.11")


def test_pants_can_start_before_the_tools_exist(tmp_path: Path) -> None:
    layout = Layout(tmp_path, tmp_path / "missing")
    text = pants_rc(layout, PENDING_STAMP, "", "/usr/bin/python3.11", with_tools=False)
    assert "[pex-cli]" not in text
    assert "[protoc]" not in text
    assert 'search_path = ["/usr/bin"]' in text
    # ./pants compares everything before the last space with its stamp, which always
    # names the install key: a pending file is never taken for a finished one.
    assert text.splitlines()[0].rsplit(" ", 1)[0] == PENDING_STAMP
    assert not PENDING_STAMP.startswith("# meridian-bootstrap 0")
