"""Affected-only runs against real git history. Pants' answers come from a stand-in
that knows which files this small repository's targets own and which images depend on
them; the same code runs real Pants in CI and in `make test-changed`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.release import affected, catalog
from tools.release.errors import ReleaseError
from tools.release.gitrepo import commit, init

SERVICES = ("alpha", "beta")
OWNED = {
    "services/alpha/BUILD",
    "services/alpha/app.py",
    "services/beta/BUILD",
    "services/beta/app.py",
    "libs/shared/BUILD",
    "libs/shared/util.py",
    # Image pipeline: the base image, which every service image starts from, depends on it.
    "tools/images/BUILD",
    "tools/images/build.sh",
    # A benchmark: its own tests depend on it, no image does.
    "bench/images/BUILD",
    "bench/images/main.py",
}
# Which service images each owned file reaches (Pants' transitive dependents).
IMAGES_OF = {
    "services/alpha/app.py": ["services/alpha:image"],
    "services/beta/app.py": ["services/beta:image"],
    "libs/shared/util.py": ["services/alpha:image", "services/beta:image"],
    "tools/images/build.sh": ["services/alpha:image", "services/beta:image"],
}
FILES = {path: f"# {path}\n" for path in OWNED if not path.endswith("BUILD")} | {
    **{path: "meridian_service()\n" for path in OWNED if path.endswith("BUILD")},
    # The catalog `make services` writes; the release tools read services from it.
    catalog.CATALOG: json.dumps(
        {"services": [{"name": n, "directory": f"services/{n}", "image": n} for n in SERVICES]}
    ),
    "pants.toml": "[GLOBAL]\n",
    "README.md": "Meridian\n",
}


class StandInPants:
    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.calls: list[list[str]] = []

    def __call__(self, arguments: list[str]) -> str:
        self.calls.append(arguments)
        if arguments == ["filedeps", "::"]:
            return "\n".join(sorted(path for path in OWNED if (self.repo / path).exists()))
        base = arguments[0].removeprefix("--changed-since=")
        changed = affected.changed_files(self.repo, base)
        images = sorted({image for path in changed for image in IMAGES_OF.get(path, [])})
        return "\n".join(["libs/shared:lib", *images])


@pytest.fixture()
def repo(tmp_path: Path) -> tuple[Path, str]:
    return tmp_path, init(tmp_path, FILES)


def test_one_service_change(repo: tuple[Path, str]) -> None:
    root, base = repo
    commit(root, {"services/alpha/app.py": "print('changed')\n"}, "alpha")
    result = affected.compute(root, base, StandInPants(root))
    assert not result.everything
    assert result.services == ("alpha",)
    assert result.pants_args == (f"--changed-since={base}", "--changed-dependents=transitive")


def test_shared_library_change_reaches_its_dependents(repo: tuple[Path, str]) -> None:
    root, base = repo
    commit(root, {"libs/shared/util.py": "X = 2\n"}, "shared")
    assert affected.compute(root, base, StandInPants(root)).services == ("alpha", "beta")


def test_image_pipeline_change_rebuilds_every_image_and_tests_only_its_dependents(
    repo: tuple[Path, str],
) -> None:
    root, base = repo
    commit(root, {"tools/images/build.sh": "#!/bin/sh\nexit 0\n"}, "pipeline")
    result = affected.compute(root, base, StandInPants(root))
    assert (result.everything, result.reasons) == (False, ())
    assert result.services == ("alpha", "beta")
    assert result.pants_args == (f"--changed-since={base}", "--changed-dependents=transitive")


def test_benchmark_change_builds_no_image(repo: tuple[Path, str]) -> None:
    root, base = repo
    commit(root, {"bench/images/main.py": "RUNS = 7\n"}, "bench")
    result = affected.compute(root, base, StandInPants(root))
    assert (result.everything, result.services) == (False, ())


@pytest.mark.parametrize(
    "path",
    [
        "pants.toml",
        "pants.ci.toml",
        "build-support/macros.py",
        "tools/bootstrap/pants_install.py",
        "tools/prerequisites.sh",
        "3rdparty/pants/requirements.txt",
        "3rdparty/python/default.lock",
    ],
)
def test_global_input_runs_everything(repo: tuple[Path, str], path: str) -> None:
    root, base = repo
    commit(root, {path: "changed\n"}, "global")
    result = affected.compute(root, base, StandInPants(root))
    assert result.everything
    assert result.pants_args == ("::",)
    assert result.services == ("alpha", "beta")
    assert result.reasons == (f"{path}: global input",)


def test_file_no_target_owns_runs_everything(repo: tuple[Path, str]) -> None:
    root, base = repo
    commit(root, {"README.md": "changed\n", "services/alpha/app.py": "x = 1\n"}, "docs")
    result = affected.compute(root, base, StandInPants(root))
    assert result.everything
    assert result.reasons == ("README.md: no Pants target owns it",)


def test_deleted_and_untracked_files_count(repo: tuple[Path, str]) -> None:
    root, base = repo
    (root / "services/beta/app.py").unlink()
    assert (
        "services/beta/app.py: no Pants target owns it"
        in affected.compute(root, base, StandInPants(root)).reasons
    )
    (root / "services/beta/app.py").write_text(FILES["services/beta/app.py"])
    (root / "services/alpha/new.py").write_text("y = 1\n")
    result = affected.compute(root, base, StandInPants(root))
    assert result.reasons == ("services/alpha/new.py: no Pants target owns it",)


def test_no_change_affects_nothing(repo: tuple[Path, str]) -> None:
    root, base = repo
    pants = StandInPants(root)
    result = affected.compute(root, base, pants)
    assert (result.everything, result.services) == (False, ())
    assert pants.calls == []


def test_no_base_is_everything(repo: tuple[Path, str]) -> None:
    root, _ = repo
    result = affected.compute(root, None, StandInPants(root))
    assert result.everything
    assert result.services == ("alpha", "beta")


def test_unknown_base_is_refused(repo: tuple[Path, str]) -> None:
    root, _ = repo
    with pytest.raises(ReleaseError, match="base 'f00d' is not a commit"):
        affected.compute(root, "f00d", StandInPants(root))


@pytest.mark.parametrize(
    "path",
    [
        "tools/release/deploy.py",
        "tools/images/build.sh",
        "tools/audit/osv.py",
        "bench/devloop/main.py",
        "deployments/docker/base/packages.lock",
        "3rdparty/tools/gitleaks.txt",
        "tools/bootstrap/pants_install_test.py",
    ],
)
def test_what_targets_own_is_no_global_input(path: str) -> None:
    """A change to these affects what depends on them (their owners' dependents), not
    everything: tools and benchmarks, the base image's package lists, a tool's lock, a
    test of what ./pants runs."""
    assert not affected.is_global(path)
