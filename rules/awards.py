"""The amount a committee may award (README « Committee review »): positive, and at most what
was requested. Checked when the decision is recorded (services/review.py) and again when the
ledger reserves it (services/ledger.py): one rule, here."""

from __future__ import annotations

from decimal import Decimal

from rules.money import eur


def award_refusal(amount: Decimal, requested: Decimal) -> str | None:
    """Why ``amount`` cannot be awarded on a request of ``requested`` (French), or None."""
    if amount <= 0:
        return "le montant accordé doit être positif"
    if amount > requested:
        return (f"le montant accordé ({eur(amount)}) dépasse le montant demandé "
                f"({eur(requested)})")
    return None
