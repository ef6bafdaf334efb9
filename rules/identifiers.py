"""French organisation identifiers: the SIREN (9 digits, the company) inside a SIRET (14
digits, one of its establishments). Conflicts of interest are judged by SIREN."""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[\s.\-]")  # as people write them: 123 456 789 00012, 123.456.789


def siren_of(identifier: str | None) -> str | None:
    """The SIREN of a SIRET (its first 9 digits) or of a SIREN, separators ignored; None when
    ``identifier`` is neither 9 nor 14 digits."""
    if not identifier:
        return None
    digits = _SEPARATORS.sub("", identifier)
    if digits.isascii() and digits.isdigit() and len(digits) in (9, 14):
        return digits[:9]
    return None
