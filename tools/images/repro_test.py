"""repro.py's records and comparison; the builds in empty stores themselves are what
`make test-images` runs, on a Docker daemon and on Podman."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tools.images import repro

ONE = "sha256:" + "1" * 64
TWO = "sha256:" + "2" * 64


def image(target: str, image_id: str = ONE, manifest: str = "") -> repro.Image:
    return repro.Image(target, image_id, "1970-01-01T00:00:00Z", manifest)


def test_identical_records_have_no_differences() -> None:
    record = [image("deployments/docker/base:base"), image("services/a:image", manifest=TWO)]
    assert repro.differences(record, list(reversed(record))) == []


def test_each_difference_is_named() -> None:
    first = [image("services/a:image", manifest=ONE), image("services/b:image"), image("x:only")]
    second = [
        image("services/a:image", manifest=TWO),
        image("services/b:image", image_id=TWO),
        image("y:only"),
    ]
    assert repro.differences(first, second) == [
        f"services/a:image: manifest {ONE} != {TWO}",
        f"services/b:image: image id {ONE} != {TWO}",
        "x:only: only in the first record",
        "y:only: only in the second record",
    ]


def test_a_record_reads_back_as_written(tmp_path: Path) -> None:
    record = [image("services/a:image", manifest=TWO)]
    repro.write_record(tmp_path / "r.json", record)
    assert repro.read_record(tmp_path / "r.json") == record


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not a record written by `repro record`"),
        ('{"version": 2, "images": []}', "record version 2, expected 1"),
        ('{"version": 1, "images": [{"target": "x"}]}', "not a record written"),
    ],
)
def test_a_bad_record_is_refused_by_name(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "r.json"
    path.write_text(content)
    with pytest.raises(repro.ReproError, match=message):
        repro.read_record(path)


def test_docker_info_files_name_their_targets(tmp_path: Path) -> None:
    for relative in (
        "services.current_account/image.docker-info.json",
        "deployments.docker.base/base.docker-info.json",
        "services.current_account/image-srcs.pex/file.docker-info.json",
    ):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(json.dumps({"image_id": ONE}))
    assert sorted(repro.info_files(tmp_path)) == [
        "deployments/docker/base:base",
        "services/current_account:image",
    ]


def test_the_pushed_digest_is_read_from_dockers_output() -> None:
    output = f"abc: Pushed\nrepro: digest: {TWO} size: 1573\n"
    match = repro.PUSHED.search(output)
    assert match is not None
    assert match[1] == TWO


def test_a_service_image_is_built_with_its_bases() -> None:
    assert repro.with_bases(["services/a:image", "services/b:dev-image"]) == [
        "deployments/docker/base:base",
        "services/a:runtime",
        "services/a:image",
        "services/b:dev-image",
    ]


def test_without_root_a_docker_check_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MERIDIAN_ENGINE", "docker")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(repro, "ROOTFS", Path(__file__))  # as after make docker
    with pytest.raises(repro.ReproError, match="only root can start here: run as root, or with"):
        repro.check(["services/a:image"])
