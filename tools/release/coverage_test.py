"""The affected-only rule's coverage check (coverage.py) on targets shaped as `pants peek`
prints them. `make lint` runs the check on the repository itself with real Pants."""

from __future__ import annotations

from typing import Any

from tools.release.coverage import classify, images_not_reaching, instrument_imports


def target(
    address: str, kind: str, sources: list[str], dependencies: list[str] | None = None
) -> dict[str, Any]:
    return {
        "address": address,
        "target_type": kind,
        "sources": sources,
        "dependencies": dependencies or [],
    }


TARGETS = [
    # A library a service image uses, through its generated file targets.
    target(
        "libs/chassis:chassis", "python_sources", ["libs/chassis/app.py"], ["libs/chassis/app.py"]
    ),
    target("libs/chassis/app.py", "python_source", ["libs/chassis/app.py"]),
    target("services/a:image", "docker_image", ["services/a/Dockerfile"], ["libs/chassis/app.py"]),
    target("services/a/main_test.py:tests", "python_test", ["services/a/main_test.py"]),
    # Read outside Pants' graph, depended on by nothing: the misses.
    target("//:pyproject", "files", ["pyproject.toml"]),
    target("//pyproject.toml:pyproject", "file", ["pyproject.toml"]),
    target(
        "deployments/docker/base:rootfs-tool",
        "python_sources",
        ["deployments/docker/base/rootfs.py"],
        ["deployments/docker/base/rootfs.py:rootfs-tool"],
    ),
    target(
        "deployments/docker/base/rootfs.py:rootfs-tool",
        "python_source",
        ["deployments/docker/base/rootfs.py"],
    ),
    target(
        "deployments/docker/base/__init__.py:rootfs-tool",
        "python_source",
        ["deployments/docker/base/__init__.py"],
    ),
]
TRACKED = [
    "README.md",
    "pants.toml",
    "libs/chassis/app.py",
    "services/a/Dockerfile",
    "services/a/main_test.py",
    "pyproject.toml",
    "deployments/docker/base/rootfs.py",
    "deployments/docker/base/__init__.py",
]


# As affected.GLOBAL_INPUTS was before pyproject.toml joined it.
GLOBAL = ("pants.toml",)


def test_every_file_is_global_unowned_or_reaches_a_dependent() -> None:
    found = classify(TARGETS, TRACKED, GLOBAL)
    # Until it has content, no import makes Pants depend on a package's __init__.py.
    assert "deployments/docker/base/__init__.py" in dict(found.missed)
    found = classify(TARGETS, TRACKED, GLOBAL, empty=["deployments/docker/base/__init__.py"])
    assert "deployments/docker/base/__init__.py" in found.owned
    assert found.global_files == ("pants.toml",)
    assert found.unowned == ("README.md",)
    assert set(found.owned) - {"deployments/docker/base/__init__.py"} == {
        "libs/chassis/app.py",  # the service image depends on it
        "services/a/Dockerfile",  # an image's own file: a change rebuilds that image
        "services/a/main_test.py",  # a test: a change affects that test
    }
    # A generator's dependency on its own files does not count as a dependent.
    assert dict(found.missed) == {
        "deployments/docker/base/rootfs.py": (
            "deployments/docker/base/rootfs.py:rootfs-tool, deployments/docker/base:rootfs-tool"
        ),
        "pyproject.toml": "//:pyproject, //pyproject.toml:pyproject",
    }


def test_a_dependent_or_a_global_pattern_covers_a_miss() -> None:
    covered = [
        *TARGETS,
        target(
            "deployments/docker/base:base",
            "docker_image",
            [],
            ["deployments/docker/base:rootfs-tool"],
        ),
    ]
    found = classify(covered, TRACKED, global_inputs=("pants.toml", "pyproject.toml"))
    assert "deployments/docker/base/rootfs.py" in found.owned
    assert "pyproject.toml" in found.global_files


def test_nothing_outside_bench_may_import_from_it() -> None:
    sources = {
        # A benchmark may import the product and other benchmarks.
        "bench/load/main.py": "from bench.load import relay\nimport meridian_chassis.app\n",
        "bench/load/relay.py": "import asyncio\n",
        # Names that only start like the package, relative imports, strings: not imports.
        "libs/chassis/app.py": (
            "from . import bench\nimport benchmark\nfrom benches import x\nCMD = 'bench.load'\n"
        ),
        # The product may not, not even from a test or inside a function.
        "services/a/relay_test.py": "def test():\n    from bench.load.relay import Relay\n",
        "tools/release/e2e.py": "import json, bench.load.main as load\n",
    }
    assert instrument_imports(sources) == [
        ("services/a/relay_test.py", "bench.load.relay"),
        ("tools/release/e2e.py", "bench.load.main"),
    ]


def test_every_image_reaches_the_image_pipeline() -> None:
    chain = [
        target("tools/images:pipeline", "target", [], ["tools/images/build.sh:shell"]),
        target("base:base", "docker_image", ["base/Dockerfile"], ["tools/images:pipeline"]),
        target("services/a:runtime", "docker_image", [], ["base:base"]),
        target("services/a:image", "docker_image", [], ["services/a:runtime"]),
    ]
    assert images_not_reaching(chain, "tools/images:pipeline") == []
    # The base image without the pipeline: no image is rebuilt when a script changes.
    chain[1] = target("base:base", "docker_image", ["base/Dockerfile"], [])
    assert images_not_reaching(chain, "tools/images:pipeline") == [
        "base:base",
        "services/a:image",
        "services/a:runtime",
    ]
    # classify reports the real pipeline's reach the same way.
    assert classify(chain, [], GLOBAL).images_off_pipeline == (
        "base:base",
        "services/a:image",
        "services/a:runtime",
    )
