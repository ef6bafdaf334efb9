"""What the ledger's money movements read before they move anything: the application, its
grant with its tranches, an entry by idempotency key, the tranche due dates and the dates a
payment may bear. No writes here (those are in ``ledger.py`` and ``balances.py``)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from models import Application, DomainError, Grant, LedgerEntry, NotFound
from models.lookup import application_by_reference
from rules.tranches import DateOutOfRange, TranchePlan, due_date


def entry(session: Session, key: str) -> LedgerEntry | None:
    return session.scalars(select(LedgerEntry).where(LedgerEntry.idempotency_key == key)).first()


def application(session: Session, reference: str) -> Application:
    return application_by_reference(session, reference, fresh=True)


def grant(session: Session, app: Application) -> Grant:
    found = session.scalars(
        select(Grant).where(Grant.application_id == app.id)
        .options(selectinload(Grant.tranches)).execution_options(populate_existing=True)
    ).first()
    if found is None:
        raise NotFound(f"{app.reference} : aucune subvention attribuée à ce dossier "
                       f"(statut « {app.status} »)")
    return found


def due_dates(app: Application, plan: TranchePlan, now: dt.datetime) -> list[dt.date]:
    """The tranche due dates, or a DomainError naming the dates when the calendar cannot
    hold them (a project starting or ending after year 9999)."""
    document = app.document
    try:
        start = dt.date.fromisoformat(str(document["start_date"]))
        months = int(document["duration_months"])
        return [due_date(spec.due, signed_on=now.date(), start=start, months=months)
                for spec in plan.tranches]
    except (KeyError, TypeError, ValueError) as exc:
        why = str(exc) if isinstance(exc, DateOutOfRange) else "date de début ou durée illisible"
        raise DomainError(f"{app.reference} : échéances des tranches incalculables (début "
                          f"{document.get('start_date')!s}, durée "
                          f"{document.get('duration_months')!s} mois) : {why} ; rien n'a été "
                          "modifié") from exc


def payment_window(grant: Grant, now: dt.datetime, timezone: str) -> tuple[dt.date, dt.date]:
    """The dates a payment may bear: from the approval day (the signature tranche's due date)
    to today, today read both in UTC and in the fund's zone (the later of the two)."""
    try:
        local = now.astimezone(ZoneInfo(timezone)).date()
    except (ValueError, ZoneInfoNotFoundError):
        local = now.date()
    return grant.approved_at.date(), max(now.date(), local)


def check_payment_date(reference: str, grant: Grant, paid_on: dt.date, now: dt.datetime,
                       timezone: str) -> None:
    first, last = payment_window(grant, now, timezone)
    if not first <= paid_on <= last:
        raise DomainError(f"{reference} : date de paiement {paid_on.isoformat()} hors de la "
                          f"période permise, du {first.isoformat()} (accord) au "
                          f"{last.isoformat()} (aujourd'hui)")
