"""The applicant's side of an application (issue 13): their list, the application's page
(read model) and withdrawing it. Authorisation: odd17/services/access.py."""

from __future__ import annotations

from typing import Any, TypedDict

from sqlalchemy import func, or_, select

from models import Application, DomainError, Draft, DraftMember, Status
from models.lifecycle import TRANSITIONS
from odd17.services.access import application_for
from odd17.services.attachments import AttachmentView, application_attachments
from odd17.services.finance import GrantDetail
from odd17.services.queries import application_detail
from odd17.uow import UnitOfWork
from rules.labels import status_label

MAX_REASON = 2000
_CONTROL = {*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F}


class Step(TypedDict):
    at: str
    status: str
    label: str
    reason: str


class Reason(TypedDict):
    rule: str
    passed: bool
    reason: str


class DecisionView(TypedDict):
    outcome: str
    motivation: str | None
    amount: str | None
    recorded_at: str


class TrancheView(TypedDict):
    number: int
    label: str
    amount: str
    due_on: str
    paid_amount: str | None
    paid_on: str | None


class GrantView(TypedDict):
    awarded: str
    disbursed: str
    tranches: list[TrancheView]


class ApplicationPage(TypedDict):
    reference: str
    title: str
    call: str
    status: str
    status_label: str
    submitted_at: str | None
    timeline: list[Step]
    eligibility: list[Reason]
    eligible: bool | None
    decision: DecisionView | None
    grant: GrantView | None
    attachments: list[AttachmentView]
    can_withdraw: bool


class ApplicationSummary(TypedDict):
    reference: str
    title: str
    status: str
    status_label: str
    submitted_at: str


WITHDRAWABLE = frozenset(src for src, dst in TRANSITIONS if dst == Status.withdrawn)


def application_page(uow: UnitOfWork, reference: str, email: str) -> ApplicationPage:
    """What the applicant's page of an application shows; ``NotFound`` for anyone who may not
    see it, as for a reference that does not exist."""
    app = application_for(uow.session, reference, email)
    detail = application_detail(uow, app.reference)
    can_withdraw = app.status in WITHDRAWABLE
    try:
        application_for(uow.session, app.reference, email, lead_only=True)
    except DomainError:
        can_withdraw = False
    results = detail["eligibility"]
    return {
        "reference": app.reference, "title": app.title, "call": app.call_id,
        "status": app.status.value, "status_label": status_label(app.status),
        "submitted_at": detail["submitted_at"],
        "timeline": [{"at": h["at"], "status": h["to"], "label": status_label(h["to"]),
                      "reason": h["reason"]} for h in detail["history"]],
        "eligibility": [{"rule": r["rule"], "passed": bool(r["passed"]), "reason": r["reason"]}
                        for r in results],
        "eligible": all(r["passed"] for r in results) if results else None,
        "decision": _decision(detail["decision"]),
        "grant": _grant(detail["grant"]),
        "attachments": application_attachments(uow, app.reference, email),
        "can_withdraw": can_withdraw,
    }


def _decision(decision: dict[str, Any] | None) -> DecisionView | None:
    if decision is None or decision["applied_at"] is None:  # only a decision that took effect
        return None
    return {"outcome": decision["outcome"], "motivation": decision["motif"] or None,
            "amount": decision["amount"], "recorded_at": decision["recorded_at"]}


def _grant(grant: GrantDetail | None) -> GrantView | None:
    if grant is None:
        return None
    return {"awarded": grant["awarded"], "disbursed": grant["disbursed"],
            "tranches": [{"number": t["number"], "label": t["label"], "amount": t["amount"],
                          "due_on": t["due_on"], "paid_amount": t["paid_amount"],
                          "paid_on": t["paid_on"]} for t in grant["tranches"]]}


def my_applications(uow: UnitOfWork, email: str) -> list[ApplicationSummary]:
    """The applications ``email`` may see: as their contact, or lead or co-applicant of the
    draft they came from."""
    who = email.strip().lower()
    from_drafts = select(Draft.application_id).where(
        Draft.application_id.is_not(None),
        or_(Draft.lead_email == who, Draft.id.in_(
            select(DraftMember.draft_id).where(DraftMember.email == who))))
    apps = uow.session.scalars(select(Application).where(or_(
        func.lower(Application.contact_email) == who, Application.id.in_(from_drafts)))
        .order_by(Application.id.desc())).all()
    return [{"reference": a.reference, "title": a.title, "status": a.status.value,
             "status_label": status_label(a.status), "submitted_at": a.submitted_at.isoformat()}
            for a in apps]


def withdraw(uow: UnitOfWork, reference: str, email: str, reason: str) -> None:
    """The lead withdraws the application (eligible, in review or before the committee), with
    a reason recorded in its history; a compare-and-set, so a decision taken meanwhile wins."""
    text = (reason or "").strip()
    if not text:
        raise DomainError("indiquez la raison du retrait")
    if len(text) > MAX_REASON:
        raise DomainError(f"raison du retrait trop longue : au plus {MAX_REASON} caractères")
    if any(ord(ch) in _CONTROL for ch in text):
        raise DomainError("caractère de contrôle interdit dans la raison du retrait")
    app = application_for(uow.session, reference, email, lead_only=True)
    app.transition_to(Status.withdrawn, actor=email.strip().lower(), at=uow.now,
                      reason=f"retrait du porteur : {text}")
