"""`python3 -m bench.pr`, as make bench-pr runs it."""

from meridian_testing.programs import check_command_line


def test_module_starts_as_a_program() -> None:
    check_command_line("bench.pr", "the phases of a one-service pull request")
