from __future__ import annotations

from pathlib import Path

import pytest

from tools.release import buildinfo
from tools.release.errors import ReleaseError
from tools.release.gitrepo import git, init


def test_clean_commit(tmp_path: Path) -> None:
    sha = init(tmp_path, {"a.txt": "a"})
    info = buildinfo.read(tmp_path)
    assert info.tags() == [sha[:12]]
    assert info.env() == {
        "MERIDIAN_BUILD_VERSION": f"0.0.0-dev.g{sha[:12]}",
        "MERIDIAN_BUILD_REVISION": sha[:12],
        "MERIDIAN_BUILD_DATE": "2026-11-26T10:00:00Z",
        "MERIDIAN_SOURCE_URL": "",
    }


def test_untracked_file_makes_the_tree_dirty_and_hides_release_tags(tmp_path: Path) -> None:
    sha = init(tmp_path, {"a.txt": "a"})
    git(tmp_path, "tag", "v1.0.0")
    (tmp_path / "new.txt").write_text("x")
    info = buildinfo.read(tmp_path)
    assert info.tags() == [f"{sha[:12]}-dirty"]
    assert info.version == f"0.0.0-dev.g{sha[:12]}.dirty"


def test_release_tags(tmp_path: Path) -> None:
    sha = init(tmp_path, {"a.txt": "a"})
    for tag in ("v1.2.0-rc.1", "v1.2.0", "v1.10.0-rc.2", "not-a-release"):
        git(tmp_path, "tag", tag)
    # A final release outranks the pre-releases of a higher version.
    assert buildinfo.read(tmp_path).tags() == [sha[:12], "1.2.0", "v1.2.0"]
    git(tmp_path, "tag", "-d", "v1.2.0")
    assert buildinfo.read(tmp_path).tags() == [sha[:12], "1.10.0-rc.2", "v1.10.0-rc.2"]


def test_source_date_epoch_wins(tmp_path: Path) -> None:
    init(tmp_path, {"a.txt": "a"})
    assert buildinfo.read(tmp_path, "0").build_date == "1970-01-01T00:00:00Z"
    with pytest.raises(ReleaseError, match="SOURCE_DATE_EPOCH='soon' is not a number"):
        buildinfo.read(tmp_path, "soon")


@pytest.mark.parametrize(
    ("remote", "url"),
    [
        ("git@github.com:acme/meridian.git", "https://github.com/acme/meridian"),
        ("ssh://git@github.com:22/acme/meridian.git", "https://github.com/acme/meridian"),
        ("https://user:token@github.com/acme/meridian", "https://github.com/acme/meridian"),
        ("http://example.com/meridian", "https://example.com/meridian"),
        ("/srv/git/meridian", ""),
        ("https://example.com/a b", ""),
    ],
)
def test_source_url(remote: str, url: str) -> None:
    assert buildinfo.https_source_url(remote) == url


def test_not_a_checkout(tmp_path: Path) -> None:
    with pytest.raises(ReleaseError, match="not a git checkout with a commit"):
        buildinfo.read(tmp_path)


def test_command_line_prints_tags_and_build_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What tools/image-tags.sh prints, for the checkout this module lives in."""
    sha = init(tmp_path, {"README.md": "Meridian\n"})
    monkeypatch.setattr(buildinfo, "__file__", str(tmp_path / "tools/release/buildinfo.py"))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    assert buildinfo.main([]) == 0
    assert capsys.readouterr().out == f"{sha[:12]}\n"
    assert buildinfo.main(["--env"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"MERIDIAN_BUILD_VERSION=0.0.0-dev.g{sha[:12]}",
        f"MERIDIAN_BUILD_REVISION={sha[:12]}",
        "MERIDIAN_BUILD_DATE=1970-01-01T00:00:00Z",
        "MERIDIAN_SOURCE_URL=",
    ]
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "soon")
    assert buildinfo.main([]) == 1
    assert "SOURCE_DATE_EPOCH='soon' is not a number" in capsys.readouterr().err
