"""Money helpers: amounts are Decimal euros with two decimals, formatted the French way."""

from __future__ import annotations

import datetime as dt
import re
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from typing import TYPE_CHECKING

# Babel is imported when an amount is first formatted: `odd17 --help` and the commands that
# show no amount start without it (issue 12).
if TYPE_CHECKING:
    from babel import Locale

CENT = Decimal("0.01")


def to_cents(amount: Decimal) -> int:
    """Exact conversion to integer cents; refuses sub-cent amounts rather than rounding them."""
    cents = amount * 100
    if cents != cents.to_integral_value():
        raise ValueError(f"montant avec plus de deux décimales : {amount}")
    return int(cents)


def from_cents(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(CENT, rounding=ROUND_HALF_EVEN)


def as_str(amount: Decimal) -> str:
    """The JSON form of an amount: a string with exactly two decimals, e.g. "120000.00"."""
    return str(amount.quantize(CENT, rounding=ROUND_HALF_EVEN))


@lru_cache(maxsize=1)
def _fr() -> Locale:
    from babel import Locale

    return Locale.parse("fr_FR")


@lru_cache(maxsize=4096)
def eur(amount: Decimal) -> str:
    """``120 000,00 €`` (Babel, French locale). Cached: Babel takes ~14 µs a call and policy
    bounds are formatted for every application evaluated."""
    from babel.numbers import format_currency

    return format_currency(amount, "EUR", locale=_fr())


def date_fr(value: dt.date) -> str:
    """``3 mars 2027``, ``1er octobre 2026`` (Babel, French locale; French writes the first day
    of a month as an ordinal, which Babel's CLDR pattern does not)."""
    from babel.dates import format_date  # pytz and the date tables: only for dates

    text = format_date(value, format="long", locale=_fr())
    return "1er" + text[1:] if value.day == 1 and text.startswith("1 ") else text



MAX_AMOUNT = Decimal("999999999999.99")  # NUMERIC(14,2)
# Digits grouped by three with a space, a no-break space (U+00A0), a narrow no-break space
# (U+202F, what Babel and French locales print) or a thin space; or no grouping at all.
_GROUPED = re.compile(r"\d{1,3}(?:[ \u00a0\u202f\u2009]\d{3})+|\d+")
_AMOUNT = re.compile(rf"(?P<units>{_GROUPED.pattern})(?:[,.](?P<cents>\d{{1,2}}))?")
_CURRENCY = re.compile(r"\s*(?:€|EUR|euros?)\s*$", re.IGNORECASE)
EXPECTED = "des euros avec au plus deux décimales, par ex. 70 000,50 ou 70000.50"


def parse_amount(text: str) -> Decimal:
    """A positive amount typed by a person, French or plain: ``12,5``, ``70 000``,
    ``70 000,50 €`` (any of the spaces French locales print), ``70000.50``. Refuses anything
    else with a French message (ValueError) rather than guessing: ``1.234`` or ``1,234``
    (three decimals) is neither a French nor a plain amount."""
    cleaned = _CURRENCY.sub("", text.strip())
    match = _AMOUNT.fullmatch(cleaned)
    if match is None:
        raise ValueError(f"montant invalide « {text} » : attendu {EXPECTED}")
    units = re.sub(r"\D", "", match["units"])
    amount = Decimal(f"{units}.{match['cents'] or '0'}").quantize(CENT)
    if amount <= 0:
        raise ValueError(f"montant invalide « {text} » : il doit être positif")
    if amount > MAX_AMOUNT:
        raise ValueError(f"montant invalide « {text} » : au plus {eur(MAX_AMOUNT)}")
    return amount
