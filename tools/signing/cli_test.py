"""`python3 -m tools.signing`, as the deploy runs it: missing settings are refused by name."""

from meridian_testing.programs import run_module


def test_module_refuses_a_call_without_its_settings() -> None:
    result = run_module("tools.signing")
    assert result.returncode == 2
    assert "the following arguments are required: --manifest, --repository" in result.stderr
