"""`python3 -m tools.readme`, as make test-readme runs it."""

from meridian_testing.programs import check_command_line


def test_module_starts_as_a_program() -> None:
    check_command_line("tools.readme", "Try every README command in a fresh clone of HEAD")
