from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.signing.verify import Identity, VerificationError, images, main, verify

DIGEST = "sha256:" + "ab" * 32
IMAGE = f"ghcr.io/acme/meridian/current-account@{DIGEST}"


def write_manifest(path: Path, image: str = IMAGE) -> Path:
    path.write_text(
        json.dumps(
            {
                "schema": 1,
                "commit": "c" * 40,
                "services": {"current-account": {"image": image, "revision": "c" * 12}},
            }
        )
    )
    return path


def test_checks_name_the_ci_workflow_on_main_as_the_signer() -> None:
    cosign, attestation = Identity("acme/meridian").commands(IMAGE)
    assert cosign == [
        "cosign", "verify",
        "--certificate-oidc-issuer", "https://token.actions.githubusercontent.com",
        "--certificate-identity",
        "https://github.com/acme/meridian/.github/workflows/ci.yml@refs/heads/main",
        IMAGE,
    ]  # fmt: skip
    assert attestation[:4] == ["gh", "attestation", "verify", f"oci://{IMAGE}"]
    assert "acme/meridian/.github/workflows/ci.yml" in attestation


def test_reads_the_images_of_a_release_manifest(tmp_path: Path) -> None:
    assert images(write_manifest(tmp_path / "m.json")) == [IMAGE]


def test_an_image_without_a_digest_is_refused(tmp_path: Path) -> None:
    path = write_manifest(tmp_path / "m.json", "ghcr.io/acme/meridian/current-account:latest")
    with pytest.raises(VerificationError, match="not pinned by digest"):
        images(path)


def test_missing_tools_fail_closed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(VerificationError, match="cosign is not installed"):
        verify([IMAGE], Identity("acme/meridian"))


def test_command_line_fails_closed_and_checks_its_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path / "m.json")
    assert main(["--manifest", str(manifest), "--repository", "meridian"]) == 2
    assert "--repository must be OWNER/NAME" in capsys.readouterr().err
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["--manifest", str(manifest), "--repository", "acme/meridian"]) == 1
    assert "nothing verified: cosign is not installed" in capsys.readouterr().err
