"""The command line: bad input is refused with a message naming the setting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tools.release.__main__ as cli
from tools.release import catalog
from tools.release.gitrepo import init

COMMIT = "c" * 40
ALPHA = "ghcr.io/acme/meridian/alpha@sha256:" + "1" * 64


@pytest.fixture()
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "services/alpha").mkdir(parents=True)
    (tmp_path / "services/alpha/BUILD").write_text("meridian_service()\n")
    catalog.write(tmp_path, ["alpha"])
    monkeypatch.setattr(cli, "REPO", tmp_path)
    monkeypatch.delenv("GITHUB_OUTPUT", raising=False)
    return tmp_path


def test_manifest_from_built_images(repo: Path) -> None:
    built = repo / "built.txt"
    built.write_text(f"alpha={ALPHA}\n")
    out = repo / "manifest.json"
    assert cli.main(["manifest", "--commit", COMMIT, "--built", str(built), "--out", str(out)]) == 0
    body = json.loads(out.read_text())
    assert body["services"]["alpha"] == {"image": ALPHA, "revision": COMMIT[:12]}


def test_malformed_built_line(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    built = repo / "built.txt"
    built.write_text("alpha ghcr.io/acme/meridian/alpha\n")
    status = cli.main(
        ["manifest", "--commit", COMMIT, "--built", str(built), "--out", str(repo / "m.json")]
    )
    assert status == 1
    assert (
        "built.txt:1: 'alpha ghcr.io/acme/meridian/alpha' is not <service>="
        in capsys.readouterr().err
    )
    assert not (repo / "m.json").exists()


def test_deploy_refuses_bad_seconds(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(
            [
                "deploy",
                "--environment",
                "staging",
                "--manifest",
                "m.json",
                "--state",
                "s.json",
                "--deadline",
                "soon",
                "--rollback-timeout",
                "60",
            ]
        )
    assert "'soon' is not a number of seconds" in capsys.readouterr().err


def test_deploy_refuses_a_missing_manifest(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(
        [
            "deploy",
            "--environment",
            "staging",
            "--manifest",
            str(repo / "none.json"),
            "--state",
            str(repo / "s.json"),
            "--deadline",
            "60",
            "--rollback-timeout",
            "60",
        ]
    )
    assert status == 1
    assert "release manifest" in capsys.readouterr().err
    assert not (repo / "s.json").exists()


def test_affected_with_nothing_changed_says_so_and_gives_pants_nothing(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A fresh clone: the merge base with origin/main is HEAD, the tree is clean.
    head = init(repo, {"README.md": "Meridian\n"})
    assert cli.main(["affected", "--base", head, "--pants-args"]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"nothing changed since {head}" in captured.err
    assert "nothing to test" in captured.err
