"""`python3 -m tools.coldstart`, as make bench-cold-start runs it."""

from meridian_testing.programs import check_command_line


def test_module_starts_as_a_program() -> None:
    check_command_line("tools.coldstart", "how long a new engineer waits")
