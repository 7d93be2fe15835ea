from __future__ import annotations

from bench.scale.main import table


def test_table_shows_both_sizes_ratio_and_goal() -> None:
    text = table(3, 30, {"one step": ("one", 2.0, 2.2), "all step": ("all", 10.0, 50.0)})
    one = next(line for line in text.splitlines() if line.startswith("one step")).split()
    every = next(line for line in text.splitlines() if line.startswith("all step")).split()
    assert one[2:] == ["2.0s", "2.2s", "1.10", "<=", "1.2"]
    assert every[2:] == ["10.0s", "50.0s", "5.00", "<=", "10.0"]
