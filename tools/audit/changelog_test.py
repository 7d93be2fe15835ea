from __future__ import annotations

from tools.audit.apt import version_lower
from tools.audit.changelog import cves_since
from tools.audit.conftest import needs_apt

CHANGELOG = """openssl (3.0.17-1~deb12u3) bookworm-security; urgency=medium

  * Fix CVE-2026-1001 and CVE-2026-1002.

 -- Debian Security Team <team@security.debian.org>  Mon, 02 Nov 2026 10:00:00 +0000

openssl (3.0.17-1~deb12u2) bookworm; urgency=medium

  * Point release; CVE-2025-9999 (no-DSA).

 -- Maintainer <m@debian.invalid>  Mon, 01 Sep 2025 10:00:00 +0000

openssl (3.0.17-1~deb12u1) bookworm; urgency=medium

  * Fix CVE-2025-0001.

 -- Maintainer <m@debian.invalid>  Mon, 01 Jul 2025 10:00:00 +0000
"""


def test_cves_of_the_entries_newer_than_the_pin() -> None:
    needs_apt()
    assert cves_since(CHANGELOG, "3.0.17-1~deb12u2", version_lower) == [
        "CVE-2026-1001",
        "CVE-2026-1002",
    ]
    assert cves_since(CHANGELOG, "3.0.17-1~deb12u1", version_lower) == [
        "CVE-2025-9999",
        "CVE-2026-1001",
        "CVE-2026-1002",
    ]
    assert cves_since(CHANGELOG, "3.0.17-1~deb12u3", version_lower) == []


def test_an_update_naming_no_cve_gives_none() -> None:
    needs_apt()
    text = "tzdata (2026b-0+deb12u1) bookworm; urgency=medium\n\n  * New upstream release.\n"
    assert cves_since(text, "2026a-0+deb12u1", version_lower) == []
