"""Read models of the ledger (README « For the finance officer »; docs/architecture.md): the
finance report, the tranches due and a grant's detail. They only read; money moves in
``odd17/services/ledger.py``."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, NotRequired, TypedDict

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from models import (
    Application,
    Balance,
    Grant,
    LedgerDay,
    NotFound,
    Organisation,
    Status,
    Tranche,
)
from models.ledger import TOTAL
from odd17.services.balances import ZERO, fund_id
from rules.money import as_str

if TYPE_CHECKING:
    from odd17.uow import UnitOfWork

# The read models, typed (issue 11): the CLI's --json prints them as they are, the web
# renders them; amounts are strings with two decimals (rules.money.as_str), dates ISO.


class Amounts(TypedDict):
    envelope: str
    committed: str
    disbursed: str
    available: str


class Split(TypedDict):
    key: str
    committed: str
    disbursed: str
    grants: int


class Day(Amounts):
    day: str


class TrancheDue(TypedDict):
    reference: str
    title: str
    tranche: int
    label: str
    amount: str
    paid: str
    left: str
    due_on: str
    beneficiary: str


class FinanceReport(Amounts):
    currency: str
    grants: int
    alert: bool
    alert_threshold: str
    by_objective: list[Split]
    by_region: list[Split]
    history: list[Day]
    as_of: NotRequired[str]
    tranches_due: NotRequired[list[TrancheDue]]


class TrancheDetail(TypedDict):
    number: int
    label: str
    amount: str
    due_on: str
    paid_amount: str | None
    paid_on: str | None
    payment_reference: str | None


class GrantDetail(TypedDict):
    awarded: str
    disbursed: str
    released: str
    outstanding: str
    approved_at: str
    tranches: list[TrancheDetail]


def _amounts(row: Balance | LedgerDay) -> Amounts:
    available = row.envelope - row.committed - row.disbursed
    return {"envelope": as_str(row.envelope), "committed": as_str(row.committed),
            "disbursed": as_str(row.disbursed), "available": as_str(available)}


def finance_report(uow: UnitOfWork, *, on: dt.date | None = None) -> FinanceReport:
    """Envelope, committed, disbursed, available, grants, splits and history: read from the
    running balances, never by summing the ledger (constant time in the ledger's size). With
    ``on``, also the tranches due that day (``tranches_due``) and the date itself (``as_of``).
    The alert threshold shown is the unit of work's fund configuration's."""
    session, alert_threshold = uow.session, uow.context.alert_threshold
    fund = fund_id(session)
    rows = session.scalars(select(Balance).where(Balance.fund_id == fund)).all()
    total = next((r for r in rows if r.dimension == TOTAL), None)
    if total is None:
        raise NotFound("l'enveloppe n'est pas ouverte : lancez « odd17 init »")

    def split_by(dimension: str) -> list[Split]:
        return [
            {"key": r.key, "committed": as_str(r.committed),
             "disbursed": as_str(r.disbursed), "grants": r.grants}
            for r in sorted((r for r in rows if r.dimension == dimension), key=lambda r: r.key)
            if r.grants or r.committed or r.disbursed
        ]

    days = session.scalars(select(LedgerDay).where(LedgerDay.fund_id == fund)
                           .order_by(LedgerDay.day)).all()
    amounts = _amounts(total)
    report = FinanceReport(
        envelope=amounts["envelope"], committed=amounts["committed"],
        disbursed=amounts["disbursed"], available=amounts["available"], currency="EUR",
        grants=total.grants, alert=total.alert, alert_threshold=str(alert_threshold),
        by_objective=split_by("objective"), by_region=split_by("region"),
        history=[Day(day=d.day.isoformat(), **_amounts(d)) for d in days],
    )
    if on is not None:
        report["as_of"] = on.isoformat()
        report["tranches_due"] = tranches_due(uow, on)
    return report


def tranches_due(uow: UnitOfWork, on: dt.date) -> list[TrancheDue]:
    """Tranches due on ``on`` and not paid, oldest first, with the beneficiary (the lead) and
    what is left to pay on each (``left``: the amount less what was already ``paid``)."""
    rows = uow.session.execute(
        select(Application.reference, Application.title, Tranche.number, Tranche.label,
               Tranche.amount, Tranche.paid_amount, Tranche.due_on,
               Organisation.name.label("beneficiary"))
        .join(Organisation, Organisation.id == Application.lead_id)
        .join(Grant, Grant.application_id == Application.id)
        .join(Tranche, Tranche.grant_id == Grant.id)
        .where(Tranche.paid_on.is_(None), Tranche.due_on <= on,
               # a partly paid tranche stays due for the rest; one of 0,00 € never is
               func.coalesce(Tranche.paid_amount, 0) < Tranche.amount,
               Application.status.in_((Status.approved, Status.active)))
        .order_by(Tranche.due_on, Application.reference, Tranche.number)
    )
    return [{"reference": r.reference, "title": r.title, "tranche": r.number,
             "label": r.label, "amount": as_str(r.amount),
             "paid": as_str(r.paid_amount or ZERO),
             "left": as_str(r.amount - (r.paid_amount or ZERO)), "due_on": r.due_on.isoformat(),
             "beneficiary": r.beneficiary}
            for r in rows]


def grant_detail(session: Session, app: Application) -> GrantDetail | None:
    grant = session.scalars(select(Grant).where(Grant.application_id == app.id)
                            .options(selectinload(Grant.tranches))).first()
    if grant is None:
        return None
    return {
        "awarded": as_str(grant.awarded), "disbursed": as_str(grant.disbursed),
        "released": as_str(grant.released), "outstanding": as_str(grant.outstanding),
        "approved_at": grant.approved_at.isoformat(),
        "tranches": [
            {"number": t.number, "label": t.label, "amount": as_str(t.amount),
             "due_on": t.due_on.isoformat(),
             "paid_amount": as_str(t.paid_amount) if t.paid_amount is not None else None,
             "paid_on": t.paid_on.isoformat() if t.paid_on else None,
             "payment_reference": t.payment_reference}
            for t in grant.tranches
        ],
    }
