"""engine.py's decisions, before and without starting anything: settings, the docker
CLI it picks, storage drivers, what it prints. Starting the engines themselves is what
`make docker` and `make test-images` do, on a Docker daemon and on Podman."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tools.images import engine


def places(tmp_path: Path) -> engine.Places:
    return engine.Places(
        tmp_path / "podman", tmp_path / "containers", tmp_path / "docker", tmp_path / "data"
    )


def executable(path: Path, text: str = "#!/bin/sh\nexit 1\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"MERIDIAN_ENGINE": "kubernetes"}, "MERIDIAN_ENGINE must be auto, docker or podman"),
        ({"MERIDIAN_PODMAN_STORAGE_DRIVER": "btrfs"}, "must be auto, overlay or vfs"),
        ({"MERIDIAN_DOCKER_CLI": "/nonexistent/docker"}, "expected a path such as"),
    ],
)
def test_a_bad_setting_fails_before_anything_starts(
    tmp_path: Path, setting: dict[str, str], message: str
) -> None:
    env = {"PATH": os.defpath, "MERIDIAN_ENGINE": "podman", **setting}
    with pytest.raises(engine.EngineError, match=message):
        engine.engine_settings(env, places(tmp_path))
    assert not list(tmp_path.iterdir()), "nothing written, nothing started"


def test_the_wrapper_and_duplicates_are_not_docker_clis(tmp_path: Path) -> None:
    first = executable(tmp_path / "a/docker")
    executable(tmp_path / "b/docker")
    (tmp_path / "c").mkdir()  # no docker here
    path = os.pathsep.join(
        [str(engine.WRAPPER_DIR), str(tmp_path / "c"), str(first.parent), str(first.parent)]
    )
    clis = engine.docker_clis(path + os.pathsep + str(tmp_path / "b"))
    assert clis[:2] == [str(first), str(tmp_path / "b/docker")]
    assert not any(Path(c).parent.resolve() == engine.WRAPPER_DIR.resolve() for c in clis)


def test_a_cli_without_buildx_before_23_has_buildkit_built_in(tmp_path: Path) -> None:
    # As the CLIs answer --version; `buildx` is an unknown command to both.
    reply = '#!/bin/sh\n[ "$1" = --version ] && echo "Docker version {version}" && exit 0\nexit 1\n'
    old = executable(tmp_path / "old/docker", reply.format(version="20.10.24+dfsg1, build 297e128"))
    new = executable(tmp_path / "new/docker", reply.format(version="28.2.2, build e6534b4"))
    assert engine.cli_has_buildkit(str(old))
    assert not engine.cli_has_buildkit(str(new))
    env = {"PATH": os.pathsep.join([str(new.parent), str(old.parent)])}
    assert engine.choose_docker_cli(env) == str(old), "the CLI that can BuildKit wins"
    assert engine.choose_docker_cli({**env, "MERIDIAN_DOCKER_CLI": str(new)}) == str(new)


def test_podman_keeps_the_driver_of_the_images_it_has(tmp_path: Path) -> None:
    (tmp_path / "vfs/storage/vfs").mkdir(parents=True)
    assert engine.podman_driver("auto", tmp_path) == "vfs"
    assert engine.podman_driver("overlay", tmp_path) == "overlay"
    assert engine.dockerd_driver("vfs", tmp_path) == "vfs"


def test_exports_survive_eval(tmp_path: Path) -> None:
    settings = {"A": "plain", "B": "with space", "C": "it's $HOME `x`", "D": ""}
    script = engine.exports(settings) + 'printf "%s|" "$A" "$B" "$C" "$D"'
    bash = shutil.which("bash")
    assert bash
    printed = subprocess.run(
        [bash, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert printed == "plain|with space|it's $HOME `x`||"


def test_only_root_runs_a_docker_daemon(tmp_path: Path) -> None:
    user = engine.Places.for_user(1000, {"HOME": str(tmp_path), "XDG_RUNTIME_DIR": "/run/u"})
    assert user.podman_socket == Path("/run/u/meridian/podman/podman.sock")
    assert user.podman_storage == tmp_path / ".local/share/meridian/containers"
    assert not engine.can_start_dockerd(user)
    with pytest.raises(engine.EngineError, match="only root"):
        user.docker_file("docker.sock")
    root = engine.Places.for_user(0, {})
    assert root.docker_file("docker.sock") == Path("/run/meridian/docker/docker.sock")


def test_the_command_line_names_an_unknown_command() -> None:
    result = subprocess.run(
        [sys.executable, str(Path(engine.__file__)), "restart"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "unknown command 'restart' (env, status, stop)" in result.stderr


def test_the_private_daemon_is_networkless_however_it_is_found(tmp_path: Path) -> None:
    ours = places(tmp_path)
    host = f"unix://{ours.docker_file('docker.sock')}"
    settings = engine.docker_settings("/nonexistent/docker", host, "log", ours)
    assert (settings["MERIDIAN_BUILD_NETWORK"], settings["MERIDIAN_CONTAINER_NETWORK"]) == (
        "none",
        "host",
    )
    other = engine.docker_settings("/nonexistent/docker", "unix:///var/run/docker.sock", "", ours)
    assert (other["MERIDIAN_BUILD_NETWORK"], other["MERIDIAN_CONTAINER_NETWORK"]) == ("", "")
    assert other["DOCKER_BUILDKIT"] == "0", "a CLI that does not answer has no BuildKit"


def test_podmans_settings_live_outside_the_checkout_that_started_it(tmp_path: Path) -> None:
    """A shared service must not depend on a checkout that may be deleted; one started
    with other settings (or by an older script, with none copied) is restarted."""
    places = engine.Places(tmp_path / "state", tmp_path / "storage", None, None)
    places.podman_state.mkdir()
    assert not places.containers_conf.is_relative_to(engine.REPO_ROOT)
    assert engine.podman_settings_changed(places)
    places.containers_conf.write_text(engine.CONTAINERS_CONF.read_text())
    assert not engine.podman_settings_changed(places)
    places.containers_conf.write_text("[engine]\n")
    assert engine.podman_settings_changed(places)
