#!/usr/bin/env python3
"""Layer sizes and largest paths of an image saved with `docker save`.

  docker save meridian/current-account:dev -o image.tar
  python3 tools/images/imagestats.py image.tar [--names base,deps,bytecode,srcs] [--top 10]
  python3 tools/images/imagestats.py image.tar --json

For each layer: its diff ID (sha256 of the uncompressed tar, what `docker image
inspect` lists under RootFS.Layers), its uncompressed size and its size gzipped at
level 6, as a registry stores it. Then the largest files of the merged filesystem.
Reads both archive formats: Docker's OCI layout and Podman's docker-archive.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tarfile
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath
from typing import IO

CHUNK = 1 << 20
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


@dataclass(frozen=True)
class Layer:
    name: str
    diff_id: str
    size: int
    gzip_size: int
    created_by: str


def measure(stream: IO[bytes]) -> tuple[str, int, int]:
    """sha256, size and gzip -6 size of a layer tar, in one pass."""
    digest = hashlib.sha256()
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)  # 31: gzip framing
    size = gzip_size = 0
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
        gzip_size += len(compressor.compress(chunk))
    gzip_size += len(compressor.flush())
    return f"sha256:{digest.hexdigest()}", size, gzip_size


def read_json(archive: tarfile.TarFile, member: str) -> object:
    handle = archive.extractfile(member)
    if handle is None:
        raise SystemExit(f"{member} is missing from the archive")
    return json.load(handle)


def merged_files(archive: tarfile.TarFile, layer_paths: Sequence[str]) -> dict[str, int]:
    """Regular files of the image's filesystem (upper layers win) and their sizes."""
    files: dict[str, int] = {}
    for layer_path in layer_paths:
        handle = archive.extractfile(layer_path)
        if handle is None:
            continue
        with tarfile.open(fileobj=handle, mode="r|") as layer:
            for member in layer:
                path = PurePosixPath("/", member.name)
                if path.name == OPAQUE:
                    prefix = f"{path.parent}/"
                    files = {k: v for k, v in files.items() if not k.startswith(prefix)}
                elif path.name.startswith(WHITEOUT):
                    gone = str(path.parent / path.name[len(WHITEOUT) :])
                    files = {
                        k: v for k, v in files.items() if k != gone and not k.startswith(f"{gone}/")
                    }
                elif member.isreg():
                    files[str(path)] = member.size
                else:
                    files.pop(str(path), None)
    return files


# The diff id of a layer with no files: BuildKit records one for a WORKDIR that exists.
EMPTY_LAYER = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"


def analyse(path: str, names: Sequence[str]) -> tuple[list[Layer], dict[str, int]]:
    with tarfile.open(path) as archive:
        manifest = read_json(archive, "manifest.json")
        if not isinstance(manifest, list) or not manifest:
            raise SystemExit(f"{path}: no image manifest; is it a `docker save` archive?")
        entry = manifest[0]
        layer_paths: list[str] = entry["Layers"]
        config = read_json(archive, entry["Config"])
        if not isinstance(config, dict):
            raise SystemExit(f"{path}: the image configuration is not a JSON object")
        history = [h for h in config.get("history", []) if not h.get("empty_layer")]
        layers = []
        named = 0  # names go to the layers with content, bottom up
        for index, layer_path in enumerate(layer_paths):
            handle = archive.extractfile(layer_path)
            if handle is None:
                raise SystemExit(f"{path}: layer {layer_path} is missing")
            diff_id, size, gzip_size = measure(handle)
            if diff_id == EMPTY_LAYER:
                name = "(empty)"
            else:
                name = names[named] if named < len(names) else str(named + 1)
                named += 1
            created_by = history[index].get("created_by", "") if index < len(history) else ""
            layers.append(Layer(name, diff_id, size, gzip_size, created_by))
        return layers, merged_files(archive, layer_paths)


def megabytes(size: int) -> str:
    return f"{size / 1e6:7.2f}"


def print_report(layers: Sequence[Layer], files: dict[str, int], top: int) -> None:
    print(f"  {'layer':9} {'diff id':19} {'MB':>7} {'gzip MB':>7}  created by")
    for layer in layers:
        created = layer.created_by.replace("/bin/sh -c #(nop) ", "")[:60]
        print(
            f"  {layer.name:9} {layer.diff_id[:19]} {megabytes(layer.size)} "
            f"{megabytes(layer.gzip_size)}  {created}"
        )
    size = sum(layer.size for layer in layers)
    gzip_size = sum(layer.gzip_size for layer in layers)
    print(f"  {'total':9} {'':19} {megabytes(size)} {megabytes(gzip_size)}")
    if top:
        print(f"  {top} largest paths:")
        for name, length in sorted(files.items(), key=lambda item: (-item[1], item[0]))[:top]:
            print(f"    {megabytes(length)} MB  {name}")


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("archive", help="a `docker save` tarball")
    parser.add_argument("--names", default="", help="comma-separated layer names, bottom up")
    parser.add_argument("--top", type=int, default=10, help="largest paths to list (0: none)")
    parser.add_argument("--json", action="store_true", help="print the layers as JSON")
    args = parser.parse_args(argv)
    names = [name for name in args.names.split(",") if name]
    layers, files = analyse(args.archive, names)
    if args.json:
        json.dump([asdict(layer) for layer in layers], sys.stdout, indent=2)
        print()
    else:
        print_report(layers, files, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
