"""The demo's settings, read from the environment and checked before anything runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bench.cache_demo.errors import DemoError

MIN_HIT_PERCENT_SETTING = "MERIDIAN_CACHE_DEMO_MIN_HIT_PERCENT"
KEEP_SETTING = "MERIDIAN_CACHE_DEMO_KEEP"
DEFAULT_MIN_HIT_PERCENT = 90.0


@dataclass(frozen=True)
class DemoSettings:
    min_hit_percent: float
    keep_work_dir: bool

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> DemoSettings:
        return cls(
            min_hit_percent=_percent(environ.get(MIN_HIT_PERCENT_SETTING)),
            keep_work_dir=_flag(environ.get(KEEP_SETTING)),
        )


def _percent(raw: str | None) -> float:
    if raw is None or raw == "":
        return DEFAULT_MIN_HIT_PERCENT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 100:
        raise DemoError(
            f"{MIN_HIT_PERCENT_SETTING}={raw!r}: expected a number from 0 to 100 "
            f"(the lowest acceptable remote hit ratio in percent; default {DEFAULT_MIN_HIT_PERCENT:g})"
        )
    return value


def _flag(raw: str | None) -> bool:
    if raw is None or raw in ("", "0"):
        return False
    if raw == "1":
        return True
    raise DemoError(f"{KEEP_SETTING}={raw!r}: expected 1 (keep the temp dir) or 0")
