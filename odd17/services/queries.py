"""Read side: the documented JSON shapes of ``odd17 show`` and ``odd17 list`` (README,
« `--json` shapes »). Amounts are strings with two decimals; timestamps are ISO 8601 in UTC."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from models import Application, NotFound, Status
from odd17.services.finance import grant_detail
from odd17.services.scoring import review_detail
from odd17.settings import get_fund_config
from rules.money import as_str
from rules.review import ReviewPolicy


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def application_detail(session: Session, reference: str,
                       review_policy: ReviewPolicy | None = None) -> dict[str, Any]:
    """``review_policy``: the rubric scores are computed under (default: the configured one)."""
    app = session.scalars(
        select(Application)
        .where(Application.reference == reference.strip().upper())
        .options(selectinload(Application.history), selectinload(Application.evaluations))
    ).first()
    if app is None:
        raise NotFound(f"aucun dossier de référence « {reference} »")
    doc = app.document
    latest = app.evaluations[-1] if app.evaluations else None
    return {
        "reference": app.reference,
        "call": app.call_id,
        "status": app.status.value,
        "title": app.title,
        "summary": doc.get("summary"),
        "lead": {
            "name": app.lead.name,
            "kind": app.lead.kind,
            "siret": app.lead.siret,
            "rna": app.lead.rna,
            "email": app.contact_email,
        },
        "partners": doc.get("partners", []),
        "objectives": doc.get("objectives", []),
        "innovations": doc.get("innovations", []),
        "territory": doc.get("territory"),
        "requested_amount": as_str(app.requested_amount),
        "total_budget": as_str(app.total_budget),
        "cofunding": doc.get("cofunding", []),
        "start_date": doc.get("start_date"),
        "duration_months": doc.get("duration_months"),
        "documents": doc.get("documents", []),
        "submitted_at": _iso(app.submitted_at),
        "source": app.source,
        "eligibility": latest.results if latest else [],
        "eligibility_ruleset": latest.ruleset if latest else None,
        "eligibility_policy": latest.policy_digest if latest else None,
        "evaluated_at": _iso(latest.evaluated_at) if latest else None,
        **review_detail(session, app, review_policy or get_fund_config().review),
        "grant": grant_detail(session, app),
        "history": [
            {
                "from": change.from_status.value if change.from_status else None,
                "to": change.to_status.value,
                "actor": change.actor,
                "at": _iso(change.at),
                "reason": change.reason,
            }
            for change in app.history
        ],
    }


def list_applications(session: Session, status: Status | None = None) -> list[dict[str, Any]]:
    return list(iter_applications(session, status))


def count_applications(session: Session, status: Status | None = None) -> int:
    query = select(func.count()).select_from(Application)
    if status is not None:
        query = query.where(Application.status == status)
    return session.scalar(query) or 0


def iter_applications(session: Session, status: Status | None = None, *,
                      limit: int | None = None, offset: int = 0) -> Iterator[dict[str, Any]]:
    """The rows of ``odd17 list --json``, paged in SQL and streamed (never all in memory)."""
    query = select(
        Application.reference, Application.status, Application.title, Application.call_id,
        Application.primary_objective, Application.region, Application.department,
        Application.requested_amount, Application.submitted_at,
    ).order_by(Application.id)
    if status is not None:
        query = query.where(Application.status == status)
    if limit is not None:
        query = query.limit(limit)
    if offset:
        query = query.offset(offset)
    rows = session.execute(query.execution_options(yield_per=1000))
    return (
        {
            "reference": row.reference,
            "status": row.status.value,
            "title": row.title,
            "call": row.call_id,
            "primary_objective": row.primary_objective,
            "region": row.region,
            "department": row.department,
            "requested_amount": as_str(row.requested_amount),
            "submitted_at": _iso(row.submitted_at),
        }
        for row in rows
    )


def statuses_of(session: Session, references: list[str]) -> dict[str, Status]:
    """The status of each named application that exists (references normalised)."""
    wanted = sorted({r.strip().upper() for r in references})
    found: dict[str, Status] = {}
    for start in range(0, len(wanted), 500):  # bounded IN lists
        found.update(session.execute(
            select(Application.reference, Application.status)
            .where(Application.reference.in_(wanted[start:start + 500]))).tuples().all())
    return found


def count_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(Application.status, func.count()).group_by(Application.status)
    ).all()
    return {status.value: n for status, n in rows}
