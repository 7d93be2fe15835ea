"""The report over real output of a demo's two `pants test ::` runs (testdata/)."""

from pathlib import Path

import pytest

from bench.cache_demo.errors import DemoError
from bench.cache_demo.report import CacheReport, RunOutput, TargetResult, parse_counters, parse_run

SAMPLES = Path(__file__).parent / "testdata"
# The first run writes 72 results for 39 test targets; the second reads all of them.
FIRST = (SAMPLES / "run1.log").read_text()
SECOND = (SAMPLES / "run2.log").read_text()


def report(first: str = FIRST, second: str = SECOND, min_hit_percent: float = 90) -> CacheReport:
    return CacheReport(parse_run(first, 364.8), parse_run(second, 38.6), min_hit_percent)


def test_counters_are_read_from_the_stats_log_block() -> None:
    counters = parse_counters(SECOND)
    assert counters["remote_cache_requests"] == 72
    assert counters["remote_cache_requests_cached"] == 72
    assert counters["local_execution_requests"] == 16
    assert counters["local_cache_requests_cached"] == 0
    assert parse_counters(FIRST)["remote_cache_write_successes"] == 72


def test_output_without_counters_is_an_error_naming_the_setting() -> None:
    without = FIRST[: FIRST.index("Counters:")]
    with pytest.raises(DemoError, match=r"no 'Counters:' block .*\[stats\]\.log"):
        parse_counters(without)


def test_every_test_target_line_is_read_with_where_its_result_came_from() -> None:
    first, second = parse_run(FIRST, 1.0).tests, parse_run(SECOND, 1.0).tests
    assert len(first) == len(second) == 39
    assert TargetResult("tools/release/deploy_test.py:tests", "succeeded", "ran") in first
    assert {test.source for test in first} == {"ran"}
    assert (
        TargetResult("deployments/tests/test_k8s_manifests.py", "succeeded", "cached remotely")
        in second
    )
    assert {test.source for test in second} == {"cached remotely"}


def test_a_fully_served_second_run_passes() -> None:
    result = report()
    assert (result.lookups, result.hits, result.misses) == (72, 72, 0)
    assert result.hit_ratio == 1.0
    assert result.problems() == []
    assert result.render().splitlines()[1:] == [
        "=== Remote cache demo (BuildGrid, REAPI) ===",
        "run 1 (empty caches, writes):    364.8 s   39 test targets, 72 results written to "
        "the remote cache (0 write errors)",
        "run 2 (new empty local caches):   38.6 s   39/39 test targets 'cached remotely'",
        "remote lookups:  72",
        "remote hits:     72",
        "remote misses:   0  (not found 0, read errors 0, timeouts 0, local run won the race 0)",
        "hit ratio:       100.0%  (hits / (hits + misses); required >= 90%)",
        "processes run locally in run 2: 16; local cache hits: 0",
        "wall time:       run 1 364.8 s, run 2 38.6 s; run 2 / run 1 = 0.11 (9.5x faster)",
        "PASS",
    ]


def test_a_second_run_that_found_nothing_fails() -> None:
    # The first run's own output: 72 lookups, none found, every test run.
    result = report(second=FIRST)
    assert (result.lookups, result.hits, result.misses) == (72, 0, 72)
    problems = result.problems()
    assert problems[0] == "hit ratio 0.0% is below 90%"
    assert problems[1].startswith("not every test target of run 2 was 'cached remotely': ")
    assert "tools/release/deploy_test.py:tests (ran)" in problems[1]
    assert result.render().endswith("FAIL: " + problems[-1] + "\nFAILED")


def test_the_threshold_is_inclusive() -> None:
    served = parse_run(SECOND, 38.6)
    counters = {**served.counters, "remote_cache_requests_cached": 65}  # 65/72 = 90.3%
    partly = RunOutput(counters, served.tests, served.seconds)
    assert CacheReport(parse_run(FIRST, 364.8), partly, 90).problems() == []
    assert CacheReport(parse_run(FIRST, 364.8), partly, 90.5).problems() == [
        "hit ratio 90.3% is below 90.5%"
    ]


def test_a_test_served_from_a_local_cache_fails() -> None:
    line = "✓ libs/meridian_chassis/http_test.py:tests succeeded in 3.14s (cached remotely)."
    assert line in SECOND
    second = SECOND.replace(line, line.replace("cached remotely", "cached locally")).replace(
        "  local_cache_requests_cached: 0", "  local_cache_requests_cached: 1"
    )
    assert report(second=second).problems() == [
        "not every test target of run 2 was 'cached remotely': "
        "libs/meridian_chassis/http_test.py:tests (cached locally)",
        "run 2 had 1 local cache hits: its local caches were not empty",
    ]


def test_a_second_run_without_lookups_fails() -> None:
    second = SECOND.replace("  remote_cache_requests: 72", "  remote_cache_requests: 0").replace(
        "  remote_cache_requests_cached: 72", "  remote_cache_requests_cached: 0"
    )
    problems = report(second=second).problems()
    assert problems[:2] == ["run 2 made no remote cache lookups", "hit ratio 0.0% is below 90%"]
