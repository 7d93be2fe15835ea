"""`python3 -m bench.coldstart`, as make bench-cold-start runs it."""

from meridian_testing.programs import check_command_line


def test_module_starts_as_a_program() -> None:
    check_command_line("bench.coldstart", "how long a new engineer waits")
