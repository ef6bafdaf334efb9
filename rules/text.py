"""Showing user text safely: invisible controls made visible.

A name may carry bidirectional controls (U+202E reverses what follows it on screen) or other
invisible characters; shown as they are they can disguise the text or the figures printed
after it. Outputs show them as ``<U+202E>`` instead, after which the usual escaping (rich
markup, HTML) applies."""

from __future__ import annotations

import re
import unicodedata

# C0 and C1 controls (but tab and newline, which lay text out), DEL, zero-width and
# bidirectional marks, and the byte-order mark.
_HIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e"
                     "\u2066-\u2069\ufeff]")


def show_controls(text: str) -> str:
    """``text`` with each control or bidirectional mark replaced by ``<U+XXXX>``."""
    return _HIDDEN.sub(lambda m: f"<U+{ord(m.group()):04X}>", text)


def sort_key(text: str | None) -> str:
    """A French reading order for names: accents and case ignored (« Île-de-France » among the
    I's, not after « Provence »)."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
