"""Ask a local process whether it is ready and, when it is not, why."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

from meridian_devstack.ports import port_accepts
from meridian_devstack.stack import Process


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str  # empty when ready


def _reason(status: int, text: str, errors: Mapping[str, str]) -> str:
    """The failing checks, one per line: which from /health/ready, why from the log."""
    try:
        body = json.loads(text)
    except json.JSONDecodeError:
        return f"HTTP {status}: {text.strip()[:200]}"
    if not isinstance(body, dict):
        return f"HTTP {status}: {text.strip()[:200]}"
    checks = body.get("checks") or {}
    failing = [
        f"{name}: {errors.get(name) or check.get('detail', '?')}"
        for name, check in sorted(checks.items())
        if isinstance(check, dict) and not check.get("ok")
    ]
    if failing:
        return "\n".join(failing)
    return f"HTTP {status}, status {body.get('status', '?')!r}"


def check_readiness(
    process: Process, errors: Mapping[str, str] | None = None, timeout: float = 3.0
) -> Readiness:
    """`errors`: the latest error of each failing check, from the service's log."""
    if process.ready_path is None:
        if port_accepts(process.port):
            return Readiness(True, "")
        return Readiness(False, f"nothing accepts connections on port {process.port}")
    url = f"http://127.0.0.1:{process.port}{process.ready_path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback
            return Readiness(int(response.status) == 200, "")
    except urllib.error.HTTPError as error:
        text = error.read().decode(errors="replace")
        return Readiness(False, _reason(error.code, text, errors or {}))
    except (OSError, urllib.error.URLError) as error:
        reason = getattr(error, "reason", error)
        return Readiness(False, f"{url} does not answer ({reason})")
