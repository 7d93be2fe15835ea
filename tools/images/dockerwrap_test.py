"""dockerwrap.py's decisions about a docker command line; the builds themselves run
through it in `make docker`, on a Docker daemon and on Podman."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tools.images import dockerwrap


@pytest.mark.parametrize(
    ("args", "reads"),
    [
        (["build", "-f", "-", "ctx"], True),
        (["build", "--file", "-", "ctx"], True),
        (["build", "--file=-", "ctx"], True),
        (["build", "-t", "x", "-"], True),
        (["build", "-f", "Dockerfile", "ctx"], False),
        (["build", "--tag", "-x", "ctx"], False),
    ],
)
def test_builds_reading_stdin_are_recognised(args: list[str], reads: bool) -> None:
    assert dockerwrap.reads_stdin(args) is reads


def test_tags_in_every_spelling() -> None:
    args = ["build", "-t", "a:1", "--tag", "b:2", "--tag=c:3", "ctx", "-t"]
    assert dockerwrap.build_tags(args) == ["a:1", "b:2", "c:3"]


def test_only_builds_get_the_network() -> None:
    env = {"MERIDIAN_BUILD_NETWORK": "none"}
    assert dockerwrap.with_network(["build", "ctx"], env) == ["build", "--network=none", "ctx"]
    assert dockerwrap.with_network(["run", "img"], env) == ["run", "img"]
    assert dockerwrap.with_network(["build", "ctx"], {}) == ["build", "ctx"]


def test_the_build_key_follows_arguments_environment_and_context(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub/file").write_text("one")
    (tmp_path / "__run.sh").write_text("pants' own")
    env = {"A": "1", "PWD": "/somewhere"}
    key = dockerwrap.build_key(["build", "."], env, tmp_path)
    assert key == dockerwrap.build_key(["build", "."], {**env, "PWD": "/elsewhere"}, tmp_path)
    (tmp_path / "__run.sh").write_text("changed")
    assert key == dockerwrap.build_key(["build", "."], env, tmp_path)
    assert key != dockerwrap.build_key(["build", "--pull", "."], env, tmp_path)
    assert key != dockerwrap.build_key(["build", "."], {**env, "A": "2"}, tmp_path)
    (tmp_path / "sub/file").write_text("two")
    assert key != dockerwrap.build_key(["build", "."], env, tmp_path)


def test_the_wrapper_is_never_the_real_cli(tmp_path: Path) -> None:
    real = tmp_path / "docker"
    real.write_text("#!/bin/sh\n")
    real.chmod(0o755)
    path = os.pathsep.join([str(dockerwrap.WRAPPER_DIR), str(tmp_path)])
    assert dockerwrap.real_cli({"PATH": path}) == str(real)
    assert dockerwrap.real_cli({"PATH": path, "MERIDIAN_DOCKER_CLI": "/x/docker"}) == "/x/docker"


def test_buildkit_builds_name_the_epoch() -> None:
    args = dockerwrap.with_source_date_epoch(["build", "--tag", "x:1", "ctx"])
    assert args == ["build", "--build-arg", "SOURCE_DATE_EPOCH=0", "--tag", "x:1", "ctx"]


def test_a_classic_build_without_an_image_id_fails_by_name() -> None:
    with pytest.raises(SystemExit, match="the build printed no image id"):
        dockerwrap.with_normalised_id("/nonexistent/docker", "Step 1/2 : FROM scratch\n", [])
