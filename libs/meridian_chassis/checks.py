"""Readiness checks: each a named probe, run together with a timeout per round."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field


async def _no_resources() -> None:
    return None


@dataclass(frozen=True)
class Check:
    """`critical`: the service cannot serve without it (service.yaml's needs that are not
    `optional`); a failing optional check leaves the service ready, degraded."""

    name: str
    probe: Callable[[], Awaitable[None]]
    close: Callable[[], Awaitable[None]] = field(default=_no_resources)
    critical: bool = True


@dataclass(frozen=True)
class CheckResult:
    """`outcome` is what /health/ready may say (ok, failed, timed out); `detail` carries
    the error text (internal hosts, users, ports) and goes to the service log only."""

    name: str
    ok: bool
    detail: str
    outcome: str = "ok"
    critical: bool = True


async def _run_one(check: Check, timeout: float) -> CheckResult:
    try:
        await asyncio.wait_for(check.probe(), timeout)
    except TimeoutError:
        detail = f"no answer within {timeout:g}s"
        return CheckResult(check.name, False, detail, "timed out", check.critical)
    except Exception as error:  # any failure means "not ready": report it
        detail = f"{type(error).__name__}: {error}"
        return CheckResult(check.name, False, detail, "failed", check.critical)
    return CheckResult(check.name, True, "ok", "ok", check.critical)


async def run_checks(checks: Sequence[Check], timeout: float) -> list[CheckResult]:
    return list(await asyncio.gather(*(_run_one(check, timeout) for check in checks)))
