import pytest

from bench.cache_demo.errors import DemoError
from bench.cache_demo.settings import DemoSettings


def test_defaults_require_ninety_percent_and_remove_the_temp_dir() -> None:
    assert DemoSettings.from_environment({}) == DemoSettings(90.0, keep_work_dir=False)


def test_settings_are_read_from_the_environment() -> None:
    settings = DemoSettings.from_environment(
        {"MERIDIAN_CACHE_DEMO_MIN_HIT_PERCENT": "97.5", "MERIDIAN_CACHE_DEMO_KEEP": "1"}
    )
    assert settings == DemoSettings(97.5, keep_work_dir=True)


@pytest.mark.parametrize("raw", ["ninety", "-1", "101", "nan", "inf"])
def test_a_bad_hit_percent_names_the_setting_and_the_form(raw: str) -> None:
    with pytest.raises(DemoError) as error:
        DemoSettings.from_environment({"MERIDIAN_CACHE_DEMO_MIN_HIT_PERCENT": raw})
    assert str(error.value).startswith(f"MERIDIAN_CACHE_DEMO_MIN_HIT_PERCENT={raw!r}: ")
    assert "a number from 0 to 100" in str(error.value)


def test_a_bad_keep_flag_names_the_setting_and_the_form() -> None:
    with pytest.raises(DemoError, match=r"MERIDIAN_CACHE_DEMO_KEEP='yes': expected 1"):
        DemoSettings.from_environment({"MERIDIAN_CACHE_DEMO_KEEP": "yes"})
