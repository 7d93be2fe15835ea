"""The benchmark's edits on copies of the real files, and its report."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.devloop.edits import BenchError, insert_marker, toggle_patch_value, toggle_setting
from bench.devloop.main import Result, restarts_on
from meridian_devstack.stack import load_stack

PROCESSES = Path("deployments/local/processes.yaml")


def test_the_marker_runs_when_the_module_is_imported(tmp_path: Path) -> None:
    module = tmp_path / "service.py"
    module.write_text('"""Doc."""\n\nfrom __future__ import annotations\n\nimport sys\n\nX = 1\n')
    insert_marker(module, "abc123")
    assert module.read_text().index("devloop-bench abc123") < module.read_text().index("import sys")
    printed = subprocess.run(
        [sys.executable, str(module)], capture_output=True, text=True, check=True
    )
    assert printed.stdout == "devloop-bench abc123\n"


def test_a_setting_flips_in_one_process_only(tmp_path: Path) -> None:
    stack_file = tmp_path / "processes.yaml"
    shutil.copy(PROCESSES, stack_file)
    before = {p.name: p for p in load_stack(stack_file)}
    assert toggle_setting(stack_file, "current-account", "LOG_LEVEL", ("INFO", "DEBUG")) == "DEBUG"
    after = {p.name: p for p in load_stack(stack_file)}
    assert [name for name in before if before[name] != after[name]] == ["current-account"]
    assert after["current-account"].env["LOG_LEVEL"] == "DEBUG"
    assert toggle_setting(stack_file, "current-account", "LOG_LEVEL", ("INFO", "DEBUG")) == "INFO"
    assert stack_file.read_text() == PROCESSES.read_text()


def test_a_missing_setting_is_an_error(tmp_path: Path) -> None:
    stack_file = tmp_path / "processes.yaml"
    shutil.copy(PROCESSES, stack_file)
    with pytest.raises(BenchError, match="redis has no LOG_LEVEL"):
        toggle_setting(stack_file, "redis", "LOG_LEVEL", ("INFO", "DEBUG"))


def test_a_row_shows_its_median_and_every_run() -> None:
    line = Result("edit -> serving", [3.0, 1.0, 2.0], "load 1.0/1.0 -> 1.2/1.0").line()
    assert "   2.00 s   runs 3.00 1.00 2.00  load 1.0/1.0" in line
    assert Result("tilt ci", note="needs a cluster").line().endswith("needs a cluster")


def test_the_dev_overlays_log_level_flips(tmp_path: Path) -> None:
    overlay = tmp_path / "kustomization.yaml"
    shutil.copy("deployments/k8s/overlays/dev/kustomization.yaml", overlay)
    original = overlay.read_text()
    assert "path: /data/LOG_LEVEL, value: DEBUG}" in original
    assert toggle_patch_value(overlay, "LOG_LEVEL", ("DEBUG", "INFO")) == "INFO"
    assert "path: /data/LOG_LEVEL, value: INFO}" in overlay.read_text()
    assert toggle_patch_value(overlay, "LOG_LEVEL", ("DEBUG", "INFO")) == "DEBUG"
    assert overlay.read_text() == original


def test_code_edits_reload_in_place_and_build_edits_restart() -> None:
    service = {p.name: p for p in load_stack(PROCESSES)}["current-account"]
    assert not restarts_on(service, Path("services/current_account/main.py"))
    assert not restarts_on(service, Path("libs/meridian_chassis/__init__.py"))
    assert restarts_on(service, Path("services/current_account/BUILD"))
    assert restarts_on(service, Path("3rdparty/python/default.lock"))
    assert not restarts_on(service, Path("services/position_keeping/BUILD"))
