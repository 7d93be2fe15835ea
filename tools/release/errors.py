"""The one error type the command line turns into a message and a non-zero exit."""

from __future__ import annotations


class ReleaseError(Exception):
    """Bad input or a failed check: the message names what and the expected form."""
