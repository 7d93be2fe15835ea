"""`python3 -m bench.cache_demo`, as make ci-cache-demo runs it: a bad setting is refused
by name before anything starts."""

from meridian_testing.programs import run_module


def test_module_refuses_a_bad_setting_before_starting() -> None:
    result = run_module("bench.cache_demo", env={"MERIDIAN_CACHE_DEMO_MIN_HIT_PERCENT": "most"})
    assert result.returncode == 2
    assert "MERIDIAN_CACHE_DEMO_MIN_HIT_PERCENT='most': expected a number" in result.stderr
