"""Ordering of Python release versions (PEP 440), enough to tell which releases are newer.

The audit runs on the standard library alone (it must work before anything is
installed), so it cannot use `packaging`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

# PEP 440's version pattern without the local segment, which indexes refuse.
_VERSION = re.compile(
    r"""
    ^\s*v?
    (?:(?P<epoch>[0-9]+)!)?
    (?P<release>[0-9]+(?:\.[0-9]+)*)
    (?P<pre>[-_.]?(?P<pre_label>alpha|a|beta|b|c|rc|preview|pre)[-_.]?(?P<pre_number>[0-9]+)?)?
    (?P<post>-(?P<post_implicit>[0-9]+)|[-_.]?(?:post|rev|r)[-_.]?(?P<post_number>[0-9]+)?)?
    (?P<dev>[-_.]?dev[-_.]?(?P<dev_number>[0-9]+)?)?
    \s*$
    """,
    re.VERBOSE | re.IGNORECASE,
)
_PRE_RANK = {"a": 0, "alpha": 0, "b": 1, "beta": 1, "c": 2, "rc": 2, "pre": 2, "preview": 2}


class InvalidVersionError(ValueError):
    pass


@dataclass(frozen=True, order=True)
class Version:
    """Compares like pip does; `text` is the version as the index spelled it."""

    epoch: int
    release: tuple[int, ...]
    pre: tuple[float, float]
    post: float
    dev: float
    text: str = field(compare=False)

    @property
    def is_final(self) -> bool:
        """A release installers pick by default: neither a pre-release nor a dev release."""
        return self.pre[0] == math.inf and self.dev == math.inf

    def __str__(self) -> str:
        return self.text


def parse_version(text: str) -> Version:
    match = _VERSION.match(text)
    if match is None:
        raise InvalidVersionError(f"not a PEP 440 version: {text!r}")
    release = tuple(int(part) for part in match["release"].split("."))
    while len(release) > 1 and release[-1] == 0:
        release = release[:-1]

    has_post = match["post"] is not None
    has_dev = match["dev"] is not None
    if match["pre"] is not None:
        pre = (float(_PRE_RANK[match["pre_label"].lower()]), float(match["pre_number"] or 0))
    elif has_dev and not has_post:
        pre = (-math.inf, -math.inf)  # 1.0.dev1 sorts before 1.0a1
    else:
        pre = (math.inf, math.inf)
    post = float(match["post_implicit"] or match["post_number"] or 0) if has_post else -math.inf
    dev = float(match["dev_number"] or 0) if has_dev else math.inf
    return Version(int(match["epoch"] or 0), release, pre, post, dev, text.strip())


_CLAUSE = re.compile(r"^\s*(~=|===|==|!=|<=|>=|<|>)\s*([^\s,]+)\s*$")


def _prefix_matches(version: Version, pattern: str) -> bool:
    """`version` matches `pattern` like `3.11.*` (epoch and release segments)."""
    wanted = parse_version(pattern.removesuffix(".*"))
    length = len(pattern.removesuffix(".*").split("."))
    padded = version.release + (0,) * max(0, length - len(version.release))
    wanted_release = wanted.release + (0,) * max(0, length - len(wanted.release))
    return version.epoch == wanted.epoch and padded[:length] == wanted_release[:length]


def allows(requires_python: str | None, python: str) -> bool:
    """Whether a release's Requires-Python admits this interpreter version (e.g. 3.11.2).

    A clause the audit cannot read admits it: the release then counts as installable,
    so a doubt makes the audit stricter, never laxer.
    """
    if not requires_python or not requires_python.strip():
        return True
    interpreter = parse_version(python)
    for clause in requires_python.split(","):
        match = _CLAUSE.match(clause)
        if match is None:
            continue
        operator, operand = match.groups()
        try:
            if operand.endswith(".*"):
                if operator in ("==", "!=") and _prefix_matches(interpreter, operand) != (
                    operator == "=="
                ):
                    return False
                continue
            bound = parse_version(operand)
        except InvalidVersionError:
            continue
        if operator == "~=":
            prefix = ".".join(operand.split(".")[:-1]) + ".*"
            if interpreter < bound or not _prefix_matches(interpreter, prefix):
                return False
        elif not {
            "==": interpreter == bound,
            "===": interpreter == bound,
            "!=": interpreter != bound,
            "<=": interpreter <= bound,
            ">=": interpreter >= bound,
            "<": interpreter < bound,
            ">": interpreter > bound,
        }[operator]:
            return False
    return True
