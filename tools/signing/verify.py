"""Verify, before a deploy, that every image of a release manifest was signed and attested
by this repository's CI on main (keyless: Sigstore certificates from GitHub's OIDC).

    python3 -m tools.signing --manifest release-manifest.json --repository OWNER/NAME

For each `repository@sha256:...` in the manifest it runs `cosign verify` (the signature's
certificate must name .github/workflows/ci.yml on refs/heads/main of the repository,
issued through GitHub's OIDC) and `gh attestation verify` (a SLSA build provenance
attestation signed by that workflow). Anything it cannot check fails: a missing tool, a
manifest without images, a registry or Rekor that does not answer. The deploy tool or a
workflow step calls it; the cluster's admission policy (.github/CI.md, "Image signing")
enforces the same identity.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tools.release import manifest
from tools.release.errors import ReleaseError

OIDC_ISSUER = "https://token.actions.githubusercontent.com"
SIGNER_WORKFLOW = ".github/workflows/ci.yml"
SIGNER_REF = "refs/heads/main"


class VerificationError(Exception):
    pass


@dataclass(frozen=True)
class Identity:
    """Who must have signed: the repository's CI workflow, run on main."""

    repository: str  # OWNER/NAME

    @property
    def certificate_identity(self) -> str:
        return f"https://github.com/{self.repository}/{SIGNER_WORKFLOW}@{SIGNER_REF}"

    def commands(self, image: str) -> list[list[str]]:
        return [
            [
                "cosign",
                "verify",
                "--certificate-oidc-issuer",
                OIDC_ISSUER,
                "--certificate-identity",
                self.certificate_identity,
                image,
            ],
            [
                "gh",
                "attestation",
                "verify",
                f"oci://{image}",
                "--repo",
                self.repository,
                "--signer-workflow",
                f"{self.repository}/{SIGNER_WORKFLOW}",
                "--predicate-type",
                "https://slsa.dev/provenance/v1",
            ],
        ]


def images(path: Path) -> list[str]:
    """The manifest's images, each `repository@sha256:<digest>`."""
    try:
        loaded = manifest.load(path)
    except ReleaseError as error:
        raise VerificationError(str(error)) from error
    return sorted({entry.image for entry in loaded.services.values()})


def verify(images: Sequence[str], identity: Identity, timeout: float = 300) -> list[str]:
    """One problem line per image that failed a check; empty when all passed."""
    for tool in ("cosign", "gh"):
        if shutil.which(tool) is None:
            raise VerificationError(
                f"{tool} is not installed: image signatures cannot be checked, so nothing "
                "is deployed (install it, e.g. sigstore/cosign-installer, GitHub's gh)"
            )
    problems = []
    for image in images:
        for command in identity.commands(image):
            try:
                result = subprocess.run(
                    command, capture_output=True, text=True, check=False, timeout=timeout
                )
            except subprocess.TimeoutExpired:
                problems.append(f"{image}: `{' '.join(command[:3])}` took over {timeout:.0f} s")
                continue
            if result.returncode != 0:
                detail = (result.stderr.strip() or result.stdout.strip()).splitlines()
                problems.append(
                    f"{image}: `{' '.join(command[:3])}` failed: {detail[-1] if detail else ''}"
                )
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tools.signing", description=__doc__)
    parser.add_argument("--manifest", type=Path, required=True, help="release manifest (JSON)")
    parser.add_argument("--repository", required=True, help="OWNER/NAME whose CI signs images")
    args = parser.parse_args(argv)
    if args.repository.count("/") != 1 or not all(args.repository.split("/")):
        print(f"--repository must be OWNER/NAME, got {args.repository!r}", file=sys.stderr)
        return 2
    try:
        found = images(args.manifest)
        problems = verify(found, Identity(args.repository))
    except VerificationError as error:
        print(f"Image verification FAILED, nothing verified: {error}", file=sys.stderr)
        return 1
    if problems:
        print(f"Image verification FAILED ({len(problems)} problems):", file=sys.stderr)
        for line in problems:
            print(f"  - {line}", file=sys.stderr)
        return 1
    print(
        f"{len(found)} images signed and attested by {SIGNER_WORKFLOW} on main: {', '.join(found)}"
    )
    return 0
