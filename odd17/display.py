"""The one rendering path of the command line's human output.

Text that comes from a document, a CSV file or the database is never interpreted: the
consoles are built with markup and emoji off, styles are given as ``Text`` styles, and every
string is passed through :func:`safe`, which also makes control characters and bidirectional
overrides visible (they could rewrite the terminal or reorder what the reader sees)."""

from __future__ import annotations

import re
from typing import Any

import rich._wrap
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from rules.labels import status_label
from rules.text import show_controls

# rich breaks lines at any Unicode space, the no-break spaces included, so « 260 000,00 € »
# (Babel groups digits with U+202F and puts U+00A0 before the sign) could be cut in two. Words
# are split at ordinary white space only; rich reads this module-level pattern at each call.
rich._wrap.re_word = re.compile(r"[ \t\n\r\f\v]*[^ \t\n\r\f\v]+[ \t\n\r\f\v]*")

STATUS_STYLE: dict[str, str] = {
    "submitted": "yellow",
    "eligible": "green",
    "ineligible": "red",
    "in_review": "cyan",
    "committee": "magenta",
    "approved": "bold green",
    "active": "green",
    "closed": "dim",
    "rejected": "red",
    "withdrawn": "dim",
    "cancelled": "dim red",
    "refused": "bold red",
}


def console(*, stderr: bool = False) -> Console:
    """A console that never reads markup or emoji codes in what it prints."""
    return Console(stderr=stderr, highlight=False, markup=False, emoji=False,
                   soft_wrap=stderr)  # errors stay one line each


def visible(value: object) -> str:
    """``value`` as text with its invisible controls shown as ``<U+202E>`` (rules.text)."""
    return show_controls(str(value))


def safe(value: object, style: str = "") -> Text:
    """Literal text: never parsed as markup, controls made visible."""
    return Text(visible("—" if value is None else value), style=style)


def line(*parts: str | Text | tuple[object, str]) -> Text:
    """A line from literal parts; ``(text, style)`` for a styled part."""
    out = Text()
    for part in parts:
        if isinstance(part, Text):
            out.append_text(part)
        elif isinstance(part, tuple):
            out.append_text(safe(part[0], part[1]))
        else:
            out.append_text(safe(part))
    return out


def status(value: str | None) -> Text:
    """A status in French, in its colour (an unknown one as it is, ``—`` for none)."""
    if not value:
        return Text("—")
    return safe(status_label(value), STATUS_STYLE.get(value, ""))


class SafeTable(Table):
    """A table whose string cells are literal text (see module docstring)."""

    def add_row(self, *renderables: RenderableType | None, **kwargs: Any) -> None:
        super().add_row(*(safe(c) if isinstance(c, str) else c for c in renderables),
                        **kwargs)
