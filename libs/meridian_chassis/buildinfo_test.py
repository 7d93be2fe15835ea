from __future__ import annotations

from pathlib import Path

import pytest

from meridian_chassis.buildinfo import service_info
from meridian_chassis.config import ConfigError

BUILT = '{"service": "ledger", "version": "1.2.3", "revision": "0abc123", "date": "2026-11-26"}'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "build.json"
    path.write_text(text)
    return path


def test_an_image_reports_its_build_file(tmp_path: Path) -> None:
    info = service_info("ledger", {}, write(tmp_path, BUILT))
    assert (info.name, info.version, info.revision, info.build_date) == (
        "ledger",
        "1.2.3",
        "0abc123",
        "2026-11-26",
    )


def test_launcher_variables_win_over_the_build_file(tmp_path: Path) -> None:
    environ = {"MERIDIAN_BUILD_REVISION": "fff0000"}
    info = service_info("ledger", environ, write(tmp_path, BUILT))
    assert (info.version, info.revision) == ("1.2.3", "fff0000")


def test_without_a_build_file_the_values_say_unknown(tmp_path: Path) -> None:
    info = service_info("ledger", {}, tmp_path / "absent.json")
    assert (info.version, info.revision, info.build_date) == ("0.0.0-dev", "unknown", "unknown")


@pytest.mark.parametrize(
    ("text", "problem"),
    [("{not json", "is not JSON"), ('["1.2.3"]', "holds list data"), ('{"version": 1}', "holds")],
)
def test_a_malformed_build_file_names_itself_and_the_expected_form(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        service_info("ledger", {}, path)
    (message,) = raised.value.problems
    assert message.startswith(f"{path} {problem}")
    assert "expected a JSON object of strings" in message
