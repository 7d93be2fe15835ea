"""Reads what two `pants test ::` runs printed and decides whether the cache worked."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bench.cache_demo.errors import DemoError

CACHED_REMOTELY = "cached remotely"
COUNTER_LINE = re.compile(r"  ([a-z_]+): (\d+)")
# Pants prints one line per test target, e.g.
#   ✓ libs/x/y_test.py:tests succeeded in 1.20s (cached remotely).
TEST_LINE = re.compile(r"^\S+ (\S+) (succeeded|failed)(?: in [0-9.]+s)?(?: \(([^)]*)\))?\.$")


@dataclass(frozen=True)
class TargetResult:
    address: str
    outcome: str
    # "cached remotely", "cached locally", or "ran" when Pants ran the test.
    source: str


@dataclass(frozen=True)
class RunOutput:
    counters: dict[str, int]
    tests: list[TargetResult]
    seconds: float

    def counter(self, name: str) -> int:
        return self.counters.get(name, 0)


def parse_counters(log: str) -> dict[str, int]:
    """The last "Counters:" block of `--stats-log` output."""
    found: dict[str, int] = {}
    in_block = False
    for line in log.splitlines():
        if line.rstrip().endswith("Counters:"):
            in_block, found = True, {}
            continue
        match = COUNTER_LINE.fullmatch(line) if in_block else None
        if match:
            found[match[1]] = int(match[2])
        else:
            in_block = False
    if not found:
        raise DemoError("no 'Counters:' block in the Pants output (is [stats].log supported?)")
    return found


def parse_tests(log: str) -> list[TargetResult]:
    results = []
    for line in log.splitlines():
        match = TEST_LINE.match(line)
        if match:
            results.append(TargetResult(match[1], match[2], match[3] or "ran"))
    return results


def parse_run(log: str, seconds: float) -> RunOutput:
    return RunOutput(parse_counters(log), parse_tests(log), seconds)


@dataclass(frozen=True)
class CacheReport:
    first: RunOutput
    second: RunOutput
    min_hit_percent: float

    @property
    def lookups(self) -> int:
        return self.second.counter("remote_cache_requests")

    @property
    def hits(self) -> int:
        return self.second.counter("remote_cache_requests_cached")

    @property
    def misses(self) -> int:
        """Every lookup that did not serve its process."""
        return self.lookups - self.hits

    @property
    def hit_ratio(self) -> float:
        return self.hits / self.lookups if self.lookups else 0.0

    @property
    def remotely_cached_tests(self) -> int:
        return sum(1 for test in self.second.tests if test.source == CACHED_REMOTELY)

    def problems(self) -> list[str]:
        found = []
        if self.lookups == 0:
            found.append("run 2 made no remote cache lookups")
        if self.hit_ratio * 100 < self.min_hit_percent:
            found.append(f"hit ratio {self.hit_ratio:.1%} is below {self.min_hit_percent:g}%")
        tests = self.second.tests
        if not tests or self.remotely_cached_tests != len(tests):
            found.append(
                "not every test target of run 2 was 'cached remotely': "
                + ", ".join(
                    f"{test.address} ({test.source})"
                    for test in tests
                    if test.source != CACHED_REMOTELY
                )
            )
        local_hits = self.second.counter("local_cache_requests_cached")
        if local_hits:
            found.append(
                f"run 2 had {local_hits} local cache hits: its local caches were not empty"
            )
        return found

    def render(self) -> str:
        first, second = self.first, self.second
        s1, s2 = first.seconds, second.seconds
        lines = [
            "",
            "=== Remote cache demo (BuildGrid, REAPI) ===",
            f"run 1 (empty caches, writes):  {s1:7.1f} s   {len(first.tests)} test targets, "
            f"{first.counter('remote_cache_write_successes')} results written to the remote "
            f"cache ({first.counter('remote_cache_write_errors')} write errors)",
            f"run 2 (new empty local caches): {s2:6.1f} s   "
            f"{self.remotely_cached_tests}/{len(second.tests)} test targets '{CACHED_REMOTELY}'",
            f"remote lookups:  {self.lookups}",
            f"remote hits:     {self.hits}",
            f"remote misses:   {self.misses}  "
            f"(not found {second.counter('remote_cache_requests_uncached')}, "
            f"read errors {second.counter('remote_cache_read_errors')}, "
            f"timeouts {second.counter('remote_cache_request_timeouts')}, "
            "local run won the race "
            f"{second.counter('remote_cache_speculation_local_completed_first')})",
            f"hit ratio:       {self.hit_ratio:.1%}  (hits / (hits + misses); "
            f"required >= {self.min_hit_percent:g}%)",
            f"processes run locally in run 2: {second.counter('local_execution_requests')}; "
            f"local cache hits: {second.counter('local_cache_requests_cached')}",
            f"wall time:       run 1 {s1:.1f} s, run 2 {s2:.1f} s; "
            f"run 2 / run 1 = {s2 / s1:.2f} ({s1 / s2:.1f}x faster)",
        ]
        lines += [f"FAIL: {problem}" for problem in self.problems()]
        lines.append("FAILED" if self.problems() else "PASS")
        return "\n".join(lines)
