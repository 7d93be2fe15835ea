from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.release.errors import ReleaseError
from tools.release.manifest import Manifest, ServiceImage, load, merge, parse

COMMIT = "c" * 40
PREVIOUS_COMMIT = "d" * 40
IMAGE = "ghcr.io/acme/meridian/alpha@sha256:" + "1" * 64
OTHER = "ghcr.io/acme/meridian/alpha@sha256:" + "2" * 64
BETA = "ghcr.io/acme/meridian/beta@sha256:" + "3" * 64
SERVICES = ["alpha", "beta"]


def previous() -> Manifest:
    return Manifest(
        commit=PREVIOUS_COMMIT,
        services={
            "alpha": ServiceImage(IMAGE, PREVIOUS_COMMIT[:12]),
            "beta": ServiceImage(BETA, PREVIOUS_COMMIT[:12]),
        },
    )


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    previous().write(path)
    assert load(path) == previous()
    assert json.loads(path.read_text())["services"]["alpha"] == {
        "image": IMAGE,
        "revision": PREVIOUS_COMMIT[:12],
    }


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[]", "a JSON list"),
        ('{"schema": 2}', "schema is 2"),
        ('{"schema": 1, "commit": "abc"}', "not a 40-hex commit"),
        (
            f'{{"schema": 1, "commit": "{COMMIT}", "services": {{}}}}',
            "services is missing or empty",
        ),
        (
            f'{{"schema": 1, "commit": "{COMMIT}", "services": {{"a": {{"image": "x:latest", "revision": "{COMMIT[:12]}"}}}}}}',
            "not pinned by digest",
        ),
        (
            f'{{"schema": 1, "commit": "{COMMIT}", "services": {{"a": {{"image": "{IMAGE}", "revision": "main"}}}}}}',
            "not 12 hex",
        ),
    ],
)
def test_malformed_manifests_are_refused(text: str, problem: str) -> None:
    with pytest.raises(ReleaseError, match=problem):
        parse(text, "m.json")


def test_unchanged_service_keeps_its_digest_and_revision() -> None:
    result = merge(COMMIT, {"alpha": OTHER}, previous(), SERVICES)
    assert result.commit == COMMIT
    assert result.services["alpha"] == ServiceImage(OTHER, COMMIT[:12])
    assert result.services["beta"] == previous().services["beta"]


def test_rebuild_with_the_same_digest_keeps_the_old_revision() -> None:
    result = merge(COMMIT, {"alpha": IMAGE}, previous(), SERVICES)
    assert result.services["alpha"].revision == PREVIOUS_COMMIT[:12]


def test_without_a_previous_manifest_everything_must_be_built() -> None:
    with pytest.raises(ReleaseError, match="beta was not built and the previous manifest"):
        merge(COMMIT, {"alpha": OTHER}, None, SERVICES)
    assert set(merge(COMMIT, {"alpha": OTHER, "beta": BETA}, None, SERVICES).services) == set(
        SERVICES
    )


def test_built_image_must_be_a_digest_of_a_known_service() -> None:
    with pytest.raises(ReleaseError, match="not <repository>@sha256"):
        merge(COMMIT, {"alpha": "ghcr.io/acme/meridian/alpha:latest"}, previous(), SERVICES)
    with pytest.raises(ReleaseError, match="not services"):
        merge(COMMIT, {"gamma": OTHER}, previous(), SERVICES)
