"""`.pants.rc`: the settings only this machine needs (CA bundle, the local pex and protoc,
the CPython 3.11 Pants builds with), under a first line ./pants compares."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from tools.bootstrap.layout import PEX_VERSION, PROTOC_VERSION, Layout

# known_versions lists every platform Pants asks about; the file is this machine's.
PLATFORMS = ("linux_x86_64", "linux_arm64", "macos_x86_64", "macos_arm64")
# The first line of a .pants.rc whose tools are still being made: ./pants never accepts it.
PENDING_STAMP = "# meridian-bootstrap pending"


def known_versions(version: str, file: Path) -> str:
    data = file.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    entries = "".join(f'  "{version}|{platform}|{digest}|{len(data)}",\n' for platform in PLATFORMS)
    return f"known_versions = [\n{entries}]\n"


def pants_rc(
    layout: Layout, stamp: str, ca_bundle: str, python311: str, with_tools: bool = True
) -> str:
    """The settings only this machine needs. The first line is the stamp ./pants compares
    (install key, CA bundle) followed by the CPython 3.11 it names. Without the tools,
    Pants can start but not build."""
    sections = [
        f"{stamp} {python311}\n"
        "# Written by ./pants for this machine only; safe to delete, it is recreated.\n"
    ]
    if ca_bundle:
        sections.append(f'[GLOBAL]\nca_certs_path = "{ca_bundle}"\n')
    if with_tools:
        sections.append(
            f'[pex-cli]\nversion = "v{PEX_VERSION}"\nurl_template = "file://{layout.pex}"\n'
            + known_versions(f"v{PEX_VERSION}", layout.pex)
        )
        sections.append(
            f'[protoc]\nversion = "{PROTOC_VERSION}"\n'
            f'url_template = "file://{layout.protoc_zip}"\n'
            + known_versions(PROTOC_VERSION, layout.protoc_zip)
        )
    # Meridian's code is CPython 3.11 only. Pants is pointed at this one interpreter rather
    # than searching PATH: pex asks every interpreter on its search path who it is, and
    # pyenv shims answer slowly (deployments/docker/README.md, "Rebuild time").
    sections.append(f'[python-bootstrap]\nsearch_path = ["{Path(python311).parent}"]\n')
    return "\n".join(sections)


@dataclass(frozen=True)
class RcSettings:
    stamp: str
    ca_bundle: str
    python311: str
    start_pantsd: bool


def write_pants_rc(
    layout: Layout, settings: RcSettings, stamp: str | None = None, with_tools: bool = True
) -> None:
    text = pants_rc(
        layout,
        settings.stamp if stamp is None else stamp,
        settings.ca_bundle,
        settings.python311,
        with_tools,
    )
    partial = layout.pants_rc.with_name(".pants.rc.tmp")
    partial.write_text(text)
    partial.replace(layout.pants_rc)
