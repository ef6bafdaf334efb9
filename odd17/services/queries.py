"""Read side: the documented JSON shapes of ``odd17 show`` and ``odd17 list`` (README,
« `--json` shapes »), as typed read models shared by the CLI and the web portal. Amounts are
strings with two decimals; timestamps are ISO 8601 in UTC.

The read models are TypedDicts: what the use case returns is what ``--json`` prints, key order
included (tests/test_read_models.py pins it), and a renderer gets typed keys."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypedDict, cast

from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session, selectinload

from models import Application, Status
from models.lookup import application_by_reference
from rules.money import as_str

if TYPE_CHECKING:
    from odd17.services.finance import GrantDetail
    from odd17.uow import UnitOfWork


class LeadView(TypedDict):
    name: str
    kind: str
    siret: str | None
    rna: str | None
    email: str | None


class RuleResult(TypedDict):
    rule: str
    passed: bool
    reason: str


# "from" is a keyword: the functional form.
StatusChangeView = TypedDict("StatusChangeView", {
    "from": str | None, "to": str, "actor": str, "at": str, "reason": str,
})


class ApplicationDetail(TypedDict):
    """``odd17 show --json``. The review and grant parts are built by services/review.py and
    services/finance.py, which own their shapes."""

    reference: str
    call: str
    status: str
    title: str
    summary: str | None
    lead: LeadView
    partners: list[dict[str, Any]]
    objectives: list[str]
    innovations: list[str]
    territory: dict[str, Any] | None
    requested_amount: str
    total_budget: str
    cofunding: list[dict[str, Any]]
    start_date: str | None
    duration_months: int | None
    documents: list[str]
    submitted_at: str | None
    source: str | None
    eligibility: list[RuleResult]
    eligibility_ruleset: str | None
    eligibility_policy: str | None
    evaluated_at: str | None
    reviews: list[dict[str, Any]]
    score: str | None
    recusals: list[dict[str, Any]]
    decision: dict[str, Any] | None
    grant: GrantDetail | None
    history: list[StatusChangeView]


class ApplicationRow(TypedDict):
    """One row of ``odd17 list --json``."""

    reference: str
    status: str
    title: str
    call: str
    primary_objective: str | None
    region: str | None
    department: str | None
    requested_amount: str
    submitted_at: str | None


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def application_detail(uow: UnitOfWork, reference: str) -> ApplicationDetail:
    """The scores are computed under the review policy of ``uow``'s fund configuration."""
    from odd17.services.finance import grant_detail  # only ``show`` needs them
    from odd17.services.scoring import review_detail

    session = uow.session
    app = application_by_reference(session, reference, options=(
        selectinload(Application.history), selectinload(Application.evaluations)))
    doc = app.document
    latest = app.evaluations[-1] if app.evaluations else None
    review = review_detail(session, app, uow.config.review)
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
        # as stored: {rule, passed, reason} per rule, written by services/eligibility.py
        "eligibility": cast("list[RuleResult]", latest.results) if latest else [],
        "eligibility_ruleset": latest.ruleset if latest else None,
        "eligibility_policy": latest.policy_digest if latest else None,
        "evaluated_at": _iso(latest.evaluated_at) if latest else None,
        "reviews": review["reviews"],
        "score": review["score"],
        "recusals": review["recusals"],
        "decision": review["decision"],
        "grant": grant_detail(session, app),
        "history": [
            {
                "from": change.from_status.value if change.from_status else None,
                "to": change.to_status.value,
                "actor": change.actor,
                "at": change.at.isoformat(),
                "reason": change.reason,
            }
            for change in app.history
        ],
    }


def _applications() -> Table:
    """The applications table, for the list's column-only queries: a Core statement does not
    configure the mappers of every model, as an ORM one does at the first query (issue 12,
    ``odd17 list`` start-up). Same columns, types and rows."""
    return Application.__table__


def list_applications(uow: UnitOfWork, status: Status | None = None) -> list[ApplicationRow]:
    return list(iter_applications(uow, status))


def count_applications(uow: UnitOfWork, status: Status | None = None) -> int:
    table = _applications()
    query = select(func.count()).select_from(table)
    if status is not None:
        query = query.where(table.c.status == status)
    return uow.session.scalar(query) or 0


def iter_applications(uow: UnitOfWork, status: Status | None = None, *,
                      limit: int | None = None, offset: int = 0) -> Iterator[ApplicationRow]:
    """The rows of ``odd17 list --json``, paged in SQL and streamed (never all in memory)."""
    c = _applications().c
    query = select(
        c.reference, c.status, c.title, c.call_id, c.primary_objective, c.region, c.department,
        c.requested_amount, c.submitted_at,
    ).order_by(c.id)
    if status is not None:
        query = query.where(c.status == status)
    if limit is not None:
        query = query.limit(limit)
    if offset:
        query = query.offset(offset)
    rows = uow.session.execute(query.execution_options(yield_per=1000))
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
