"""normalise.py on `docker save` archives as the engines write them; the rewrite through a
real engine (save, load, tags) is what `make docker` and `make test-images` run."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tools.images import normalise

LAYER = b"layer bytes" * 100


def config(created: str, **extra: Any) -> dict[str, Any]:
    return {
        "architecture": "amd64",
        "os": "linux",
        "config": {"User": "65532:65532", "Entrypoint": ["/app/pex"]},
        "created": created,
        "history": [
            {"created": created, "created_by": "ADD rootfs.tar /"},
            {"created": created, "created_by": "USER 65532:65532", "empty_layer": True},
        ],
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "a" * 64]},
        **extra,
    }


def add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), 1_700_000_000
    archive.addfile(info, io.BytesIO(data))


def saved(path: Path, image_config: dict[str, Any], link_layer: bool = False) -> Path:
    """An archive as `docker save` writes one image: layer, legacy files, config, manifest."""
    config_bytes = json.dumps(image_config, indent=1).encode()
    config_name = normalise.image_id(config_bytes).removeprefix("sha256:") + ".json"
    with tarfile.open(path, "w") as archive:
        add(archive, "blobs/sha256/layer", LAYER)
        if link_layer:  # newer engines: the legacy path links to the blob
            link = tarfile.TarInfo("abc/layer.tar")
            link.type, link.linkname = tarfile.SYMTYPE, "../blobs/sha256/layer"
            archive.addfile(link)
        add(archive, "abc/VERSION", b"1.0")
        add(archive, config_name, config_bytes)
        layer = "abc/layer.tar" if link_layer else "blobs/sha256/layer"
        entry = {"Config": config_name, "RepoTags": None, "Layers": [layer, layer]}
        add(archive, "manifest.json", json.dumps([entry]).encode())
    return path


def members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as archive:
        return {
            m.name: archive.extractfile(m).read()  # type: ignore[union-attr]
            for m in archive.getmembers()
            if m.isfile()
        }


def test_every_timestamp_goes_to_the_epoch_and_the_build_container_goes() -> None:
    built = config(
        "2026-12-07T08:09:37.567785058Z",
        container="f00d",
        container_config={"Hostname": "f00d"},
        parent="sha256:" + "b" * 64,
    )
    result = normalise.normalised(built)
    assert result["created"] == normalise.EPOCH
    assert [entry["created"] for entry in result["history"]] == [normalise.EPOCH] * 2
    assert {"container", "container_config", "parent"}.isdisjoint(result)
    assert result["config"] == built["config"]
    assert result["history"][1]["empty_layer"] is True
    assert built["created"] != normalise.EPOCH, "the input is left as it was"


def test_podmans_step_containers_and_images_go() -> None:
    """What buildah (Podman 4.3) writes differently on every build of the same content."""
    built = config("2026-12-07T08:32:45Z")
    built["config"] |= {"Hostname": "63b984713bbc", "Image": "sha256:" + "c" * 64}
    built["history"] += [dict(built["history"][0]), dict(built["history"][1])]
    built["history"][0]["comment"] = "FROM e3f050b3bd36"
    built["history"][1]["comment"] = "FROM docker.io/meridian/base:91a0b93cd929"
    built["history"][2]["comment"] = "buildkit.dockerfile.v0"
    result = normalise.normalised(built)
    assert result["config"]["Hostname"] == ""
    assert result["config"]["Image"] == ""
    assert result["config"]["Entrypoint"] == ["/app/pex"]
    assert [step.get("comment") for step in result["history"]] == [
        None,
        None,
        "buildkit.dockerfile.v0",
        None,
    ]


def test_builds_at_different_times_give_one_image(tmp_path: Path) -> None:
    ids = set()
    for index, created in enumerate(("2026-12-07T08:09:37.5Z", "2026-12-08T10:00:00Z")):
        source = saved(tmp_path / f"saved{index}.tar", config(created))
        output = tmp_path / f"normalised{index}.tar"
        rewrite = normalise.rewrite_archive(source, output, ["meridian/x:1"])
        assert rewrite.changed
        ids.add(rewrite.after)
        files = members(output)
        assert set(files) == {
            "blobs/sha256/layer",
            f"{rewrite.after.removeprefix('sha256:')}.json",
            "manifest.json",
        }
        config_bytes = files[f"{rewrite.after.removeprefix('sha256:')}.json"]
        assert normalise.image_id(config_bytes) == rewrite.after
        assert files["blobs/sha256/layer"] == LAYER
        (entry,) = json.loads(files["manifest.json"])
        assert entry["RepoTags"] == ["meridian/x:1"]
        assert entry["Layers"] == ["blobs/sha256/layer", "blobs/sha256/layer"]
    assert len(ids) == 1


def test_a_normalised_image_is_left_alone(tmp_path: Path) -> None:
    once = normalise.canonical(normalise.normalised(config("2026-12-07T08:09:37Z")))
    source = saved(tmp_path / "saved.tar", json.loads(once))
    # saved() writes it indented: not the canonical bytes, so rewritten once more.
    first = normalise.rewrite_archive(source, tmp_path / "once.tar", [])
    again = normalise.rewrite_archive(tmp_path / "once.tar", tmp_path / "twice.tar", [])
    assert first.after == normalise.image_id(once)
    assert not again.changed
    assert not (tmp_path / "twice.tar").exists()


def test_a_linked_layer_is_written_as_the_file_it_links_to(tmp_path: Path) -> None:
    source = saved(tmp_path / "saved.tar", config("2026-12-07T08:09:37Z"), link_layer=True)
    normalise.rewrite_archive(source, tmp_path / "out.tar", [])
    assert members(tmp_path / "out.tar")["abc/layer.tar"] == LAYER


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (b'[{"Config": "a"}, {"Config": "b"}]', "expected one image"),
        (b'[{"Config": "gone.json", "Layers": []}]', "no file gone.json"),
    ],
)
def test_an_archive_it_cannot_rewrite_is_refused_by_name(
    tmp_path: Path, manifest: bytes, message: str
) -> None:
    path = tmp_path / "saved.tar"
    with tarfile.open(path, "w") as archive:
        add(archive, "manifest.json", manifest)
    with pytest.raises(normalise.NormaliseError, match=message):
        normalise.rewrite_archive(path, tmp_path / "out.tar", [])
