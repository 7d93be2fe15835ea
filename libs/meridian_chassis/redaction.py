"""Keep secrets out of errors and logs.

Settings that can carry a secret (a URL with a password, a password itself) are never
echoed as they are: configuration errors show URLs with the password masked, and the
log formatter replaces every configured secret value wherever it appears (exception
text included).
"""

from __future__ import annotations

import json
import re
import sys
import threading
import traceback
from collections.abc import Callable, Iterable
from types import TracebackType
from urllib.parse import unquote

MASK = "***"
# Query parameters that carry credentials in libpq and Redis URLs (password=, sslpassword=).
_SECRET_PARAMETER = re.compile(r"(?i)([?&][^=&#]*(?:pass|secret|token|key)[^=&#]*=)[^&#]*")
# Shorter values are not secrets worth the name and would mask ordinary words.
MIN_SECRET_LENGTH = 4


def mask_url(value: str) -> str:
    """`value` with the password of its user info and credential parameters masked.

    Works on malformed URLs too: everything between `://` and the last `@` is user
    info, so a password holding `/`, `#` or `@` is masked whole.
    """
    scheme, separator, rest = value.partition("://")
    if not separator:
        scheme, rest = "", value
    if "@" in rest:
        userinfo, host = rest.rsplit("@", 1)
        user, colon, _ = userinfo.partition(":")
        if colon:  # user@host names a user only
            rest = f"{user}:{MASK}@{host}"
    masked = f"{scheme}{separator}{rest}"
    return _SECRET_PARAMETER.sub(lambda match: match.group(1) + MASK, masked)


def url_secrets(value: str | None) -> list[str]:
    """The secret parts of a URL setting: what `mask_url` hides."""
    if not value:
        return []
    found = []
    rest = value.partition("://")[2] or value
    if "@" in rest:
        _, colon, password = rest.rsplit("@", 1)[0].partition(":")
        if colon:
            found += [password, unquote(password)]
    found += [match.group(0).partition("=")[2] for match in _SECRET_PARAMETER.finditer(value)]
    return found


class Redactor:
    """Replaces known secret values (and their JSON-escaped forms) with a mask."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        values = {value for value in secrets if value and len(value) >= MIN_SECRET_LENGTH}
        forms = values | {json.dumps(value)[1:-1] for value in values}
        # Longest first, so a secret containing another is masked whole.
        self.values = sorted(forms, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self.values:
            text = text.replace(value, MASK)
        return text


def redact_uncaught_exceptions(redact: Callable[[str], str]) -> None:
    """Tracebacks of exceptions nothing caught (main thread or others) are masked too."""

    def print_masked(
        kind: type[BaseException], error: BaseException, tb: TracebackType | None
    ) -> None:
        sys.stderr.write(redact("".join(traceback.format_exception(kind, error, tb))))

    def print_masked_thread(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None:
            print_masked(args.exc_type, args.exc_value, args.exc_traceback)

    sys.excepthook = print_masked
    threading.excepthook = print_masked_thread
