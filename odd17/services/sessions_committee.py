"""The committee's session (issue 14): the ranked proposal within what is left of the
envelope, the members, who is recused on each application (shown, and excluded from the vote
and from the quorum), the quorum for the members ticked present, and each decision applied
through ``committee`` with its outcome told apart: applied, or refused because the envelope is
short (the decision stays recorded with the refusal noted), or not recorded (bad input: quorum,
motif, amount, already decided: a DomainError as from the CLI)."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal, TypedDict

from sqlalchemy import select

from models import Application, Decision, DomainError, Recusal, Reviewer, Status
from odd17.services import committee, scoring
from odd17.services.assignment import index
from odd17.services.ledger import EnvelopeExceeded
from odd17.uow import Runner, UnitOfWork
from rules.money import as_str
from rules.review import has_quorum, parties, score_text


class Member(TypedDict):
    email: str
    name: str
    present: bool


class RecusedMember(TypedDict):
    email: str
    name: str
    reason: str


class SessionItem(TypedDict):
    rank: int
    reference: str
    title: str
    score: str | None
    requested_amount: str
    proposed: bool              # fits in what is left, in ranking order
    recused: list[RecusedMember]
    voting: list[str]           # present and not recused
    eligible_members: int       # members not recused
    quorum: bool


class CommitteeSession(TypedDict):
    available: str
    proposed_total: str
    members: list[Member]
    present: list[str]
    applications: list[SessionItem]


def _members(uow: UnitOfWork) -> list[Reviewer]:
    return list(uow.session.scalars(select(Reviewer).where(Reviewer.committee, Reviewer.active)
                                    .order_by(Reviewer.email)))


def _present(members: list[Reviewer], present: list[str]) -> set[str]:
    emails = {e.strip().lower() for e in present if e.strip()}
    unknown = sorted(emails - {m.email for m in members})
    if unknown:
        raise DomainError(f"ne sont pas membres du comité : {', '.join(unknown)}")
    return emails


def session_view(uow: UnitOfWork, present: list[str]) -> CommitteeSession:
    """The session page for these members present. Reads only: the recusals are computed as
    ``committee.record_decision`` will compute (and record) them."""
    members = _members(uow)
    here = _present(members, present)
    result = scoring.ranking(uow)
    refs = [p.reference for p in result.items]
    apps = {a.reference: a for a in uow.session.scalars(
        select(Application).where(Application.reference.in_(refs)))}
    conflicts = index(members)
    by_id = {m.id: m for m in members}
    recorded: dict[int, dict[int, str]] = {}
    for recusal in uow.session.scalars(select(Recusal).where(
            Recusal.application_id.in_([a.id for a in apps.values()]))):
        recorded.setdefault(recusal.application_id, {})[recusal.reviewer_id] = recusal.reason
    items = []
    for rank, proposal in enumerate(result.items, start=1):
        app = apps[proposal.reference]
        reasons = {**recorded.get(app.id, {}), **conflicts.find(parties(app.document))}
        recused = sorted((RecusedMember(email=by_id[i].email, name=by_id[i].name, reason=why)
                          for i, why in reasons.items() if i in by_id),
                         key=lambda r: r["email"])
        eligible = [m for m in members if m.id not in reasons]
        voting = sorted(m.email for m in eligible if m.email in here)
        items.append(SessionItem(
            rank=rank, reference=app.reference, title=app.title,
            score=score_text(proposal.score), requested_amount=as_str(proposal.amount),
            proposed=proposal.funded, recused=recused, voting=voting,
            eligible_members=len(eligible), quorum=has_quorum(len(voting), len(eligible))))
    return CommitteeSession(
        available=as_str(result.available),
        proposed_total=as_str(sum((p.amount for p in result.items if p.funded), Decimal(0))),
        members=[Member(email=m.email, name=m.name, present=m.email in here) for m in members],
        present=sorted(here), applications=items)


class Outcome(TypedDict):
    reference: str
    outcome: str
    result: Literal["applied", "envelope_short"]
    amount: str | None
    message: str | None         # the refusal, in French
    status: str                 # the application's status afterwards


def decide(runner: Runner, reference: str, outcome: str, *, present: list[str],
           amount: Decimal | None, motif: str) -> Outcome:
    """One decision of the session, recorded then applied (``committee.decide``). A refusal
    because the envelope is short is a result (the decision stays recorded, refused); any
    other refusal raises DomainError and records nothing."""
    message = None
    try:
        committee.decide(runner, reference, outcome, present=present, amount=amount,
                         motif=motif)
        result: Literal["applied", "envelope_short"] = "applied"
    except EnvelopeExceeded as exc:
        result, message = "envelope_short", str(exc)
    with runner.uow() as uow:
        app = uow.session.scalars(select(Application).where(
            Application.reference == reference.strip().upper())).one()
        decision = uow.session.scalars(select(Decision).where(
            Decision.application_id == app.id).order_by(Decision.id.desc()).limit(1)).first()
        status = Status(app.status).value
    return Outcome(reference=app.reference, outcome=outcome, result=result,
                   amount=as_str(decision.amount) if decision and decision.amount else None,
                   message=message, status=status)

