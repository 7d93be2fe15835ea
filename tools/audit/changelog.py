"""What a Debian package's changelog says a newer version fixes (the CVE IDs its entries
name), as Debian's security and LTS teams record them in every upload."""

from __future__ import annotations

import re
from collections.abc import Callable

# `zlib (1:1.2.13.dfsg-1+deb12u1) bookworm-security; urgency=medium`
_ENTRY = re.compile(r"^\S+ \(([^)\s]+)\) [^;\n]*;", re.MULTILINE)
_CVE = re.compile(r"\bCVE-\d{4}-\d{4,}\b")


def cves_since(text: str, locked: str, lower: Callable[[str, str], bool]) -> list[str]:
    """CVE IDs named by the entries newer than `locked` (newest entry first, as Debian
    writes them); `lower(a, b)` is Debian's version ordering."""
    headers = list(_ENTRY.finditer(text))
    found: set[str] = set()
    for index, header in enumerate(headers):
        if not lower(locked, header.group(1)):
            break
        end = headers[index + 1].start() if index + 1 < len(headers) else len(text)
        found.update(_CVE.findall(text, header.end(), end))
    return sorted(found)
