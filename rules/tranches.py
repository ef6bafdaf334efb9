"""Tranche schedules (README, « For the finance officer »): shares of the award, the cent
remainder on the last."""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Sequence
from decimal import ROUND_DOWN, Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rules.money import CENT

DueAt = Literal["signature", "mid_term", "end"]


class TrancheSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    label: str = Field(min_length=1, max_length=100)
    share: Decimal = Field(gt=0, le=1)
    due: DueAt


class TranchePlan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    tranches: tuple[TrancheSpec, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _shares_sum_to_one(self) -> TranchePlan:
        total = sum(t.share for t in self.tranches)
        if total != 1:
            raise ValueError(f"the tranche shares must sum to 1, not {total}")
        return self


DEFAULT_PLAN = TranchePlan(tranches=(
    TrancheSpec(label="signature de la convention", share=Decimal("0.50"), due="signature"),
    TrancheSpec(label="rapport intermédiaire", share=Decimal("0.30"), due="mid_term"),
    TrancheSpec(label="rapport final", share=Decimal("0.20"), due="end"),
))


def split(award: Decimal, shares: Sequence[Decimal]) -> list[Decimal]:
    """Each share of ``award`` rounded down to the cent; the remainder goes to the last
    tranche, so the tranches always sum exactly to the award."""
    amounts = [(award * share).quantize(CENT, rounding=ROUND_DOWN) for share in shares[:-1]]
    amounts.append(award - sum(amounts, Decimal(0)))
    return amounts


class DateOutOfRange(ValueError):
    """A computed date falls outside the calendar (after 31 December 9999)."""


def add_months(day: dt.date, months: int) -> dt.date:
    """``day`` plus ``months``, on the last day of the month when it is shorter; total: a
    result past year 9999 raises ``DateOutOfRange`` with a French message."""
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    if not dt.MINYEAR <= year <= dt.MAXYEAR:
        raise DateOutOfRange(f"{day.isoformat()} plus {months} mois dépasse le calendrier "
                             f"(au plus le 31 décembre {dt.MAXYEAR})")
    return day.replace(year=year, month=month,
                       day=min(day.day, calendar.monthrange(year, month)[1]))


def due_date(due: DueAt, *, signed_on: dt.date, start: dt.date, months: int) -> dt.date:
    """Signature: the approval date; mid-term: half-way through the project; end: its end."""
    if due == "signature":
        return signed_on
    if due == "mid_term":
        return max(signed_on, add_months(start, months // 2))
    return max(signed_on, add_months(start, months))
