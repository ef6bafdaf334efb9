"""Committee decisions (README, « Committee review »): record one, apply it, and when applying
is refused, say why on the decision.

A decision is recorded in one transaction and applied in a second, so that a killed applier
leaves a pending decision the review flow applies (``apply_pending``), never a half-applied
one. ``apply_recorded`` is the one place that applies a decision or, when the ledger refuses
it, notes the refusal on it (a third transaction, the compensation): ``decide`` (CLI ``committee
decide``, the web) and ``apply_pending`` (flows/review.py) both go through it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session, aliased

from models import Application, Decision, DecisionOutcome, DomainError, Reviewer, Status
from models.dialect import is_postgresql
from models.lifecycle import DECIDED
from models.lookup import application_by_reference
from notifications import payloads
from notifications.outbox import enqueue, message
from odd17.services import ledger
from odd17.services.assignment import conflicted
from odd17.uow import Runner, UnitOfWork
from rules.awards import award_refusal
from rules.money import eur
from rules.review import has_quorum


def record_decision(uow: UnitOfWork, reference: str, outcome: str, *, present: list[str],
                    amount: Decimal | None, motif: str) -> Decision:
    """Check and record a committee decision (pending until applied). The application row
    is locked first, so two deciders at once are serialised and the second is told it is
    already decided (or being applied) and records nothing."""
    session = uow.session
    app = application_by_reference(session, reference, lock=True)
    if app.status in DECIDED:
        raise DomainError(f"déjà décidé : {app.reference} est au statut « {app.status} » ; "
                          "rien n'a été enregistré")
    if app.status != Status.committee:
        raise DomainError(f"{app.reference} : dossier au statut « {app.status} », il n'est pas "
                          "devant le comité")
    pending = session.scalar(select(Decision).where(
        Decision.application_id == app.id, Decision.applied_at.is_(None),
        Decision.error.is_(None)).order_by(Decision.id).limit(1))
    if pending is not None:
        raise DomainError(f"déjà décidé : {app.reference} a une décision « {pending.outcome} » "
                          f"en cours d'application (n°{pending.id}) ; rien n'a été enregistré")
    try:
        kind = DecisionOutcome(outcome)
    except ValueError:
        raise DomainError(f"décision inconnue « {outcome} »") from None
    if kind is DecisionOutcome.reject and not motif.strip():
        raise DomainError(f"{app.reference} : un refus doit être motivé (--motif)")
    if kind is DecisionOutcome.approve:
        amount = app.requested_amount if amount is None else amount
        if (refusal := award_refusal(amount, app.requested_amount)) is not None:
            raise DomainError(f"{app.reference} : {refusal}")
    voting, recused = _voters(uow, app, present)
    decision = Decision(application_id=app.id, outcome=kind,
                        amount=amount if kind is DecisionOutcome.approve else None,
                        motif=motif.strip(), present=voting, recused=recused,
                        recorded_by=uow.actor, recorded_at=uow.now)
    session.add(decision)
    session.flush()
    return decision


def _voters(uow: UnitOfWork, app: Application, present: list[str]) -> tuple[list[str],
                                                                              list[str]]:
    """The present members who vote and those recused, checked for quorum."""
    members = uow.session.scalars(select(Reviewer).where(Reviewer.committee,
                                                         Reviewer.active)).all()
    emails = {e.strip().lower() for e in present}
    unknown = sorted(emails - {m.email for m in members})
    if unknown:
        raise DomainError(f"ne sont pas membres du comité : {', '.join(unknown)}")
    recused_ids = conflicted(uow, app, list(members))
    eligible = [m for m in members if m.id not in recused_ids]
    voting = sorted(m.email for m in eligible if m.email in emails)
    recused = sorted(m.email for m in members if m.id in recused_ids and m.email in emails)
    if not has_quorum(len(voting), len(eligible)):
        raise DomainError(
            f"{app.reference} : quorum non atteint : {len(voting)} membre(s) présent(s) non "
            f"récusé(s) sur {len(eligible)} ; il en faut plus de la moitié"
            + (f" (récusés : {', '.join(recused)})" if recused else ""))
    return voting, recused


def apply_decision(uow: UnitOfWork, decision_id: int) -> ledger.Result | None:
    """Apply a recorded decision: an approval reserves through the ledger (refused, with no
    change, when the envelope cannot bear it); a refusal moves to ``rejected``; a deferral keeps
    the application before the committee.

    An approval writes everything else first (the grant, the email, the decision marked
    applied) and moves the balance rows last (``ledger.commit_approval``): the fund's total
    row, which every approval locks, is then held for that move and the commit only."""
    session, now, actor = uow.session, uow.now, uow.actor
    claimed = _claimed(session, decision_id, now)
    if claimed is None:
        return None  # applied meanwhile by another run (the row's lock made us wait for it)
    decision, app = claimed
    result: ledger.Result | None = None
    staged: ledger.Staged | None = None
    if decision.outcome == DecisionOutcome.approve:
        assert decision.amount is not None
        outcome = ledger.stage_approval(
            uow, app, decision.amount, plan=uow.config.disbursement.plan(),
            key=f"decision:{decision.id}",
            reason=f"décision du comité : accord de {eur(decision.amount)} "
                   f"(présents : {', '.join(decision.present)})")
        if isinstance(outcome, ledger.Result):  # recorded already: the email is queued too
            result = outcome
        else:
            staged = outcome
            enqueue(session, [message(
                payloads.DecisionApproved.from_grant(app, staged.grant), app.contact_email,
                key=f"decision_approved:{app.reference}:{decision.id}", now=now,
                reference=app.reference)])
    elif decision.outcome == DecisionOutcome.reject:
        app.transition_to(Status.rejected, actor=actor, at=now,
                          reason=f"décision du comité : refus — {decision.motif}")
        enqueue(session, [message(
            payloads.DecisionRejected.from_decision(app, decision), app.contact_email,
            key=f"decision_rejected:{app.reference}:{decision.id}", now=now,
            reference=app.reference)])
    session.flush()  # anything else changed, before the balance rows' locks
    if staged is not None:
        result = ledger.commit_approval(uow, staged)
    return result


def pending_decisions(uow: UnitOfWork) -> list[int]:
    return list(uow.session.scalars(select(Decision.id).where(
        Decision.applied_at.is_(None), Decision.error.is_(None)).order_by(Decision.id)))


def _claimed(session: Session, decision_id: int,
             at: dt.datetime) -> tuple[Decision, Application] | None:
    """The decision, marked applied at ``at`` by this transaction, and its application as the
    database has it; ``None`` when the decision was applied already. The claim is an ``UPDATE …
    WHERE applied_at IS NULL RETURNING``: it takes the row's lock (a second applier of the same
    decision waits, then matches nothing) and marks it in the same trip; undone with the rest
    when the application fails.

    PostgreSQL: the claim is a data-modifying CTE of the SELECT that loads both objects, one
    round trip. The application is then read with the statement's snapshot, which may predate
    a wait for the decision's lock: whatever moved it meanwhile makes the move's compare-and-set
    fail (``ConcurrentChange``), as before. SQLite (no UPDATE in a WITH; ``BEGIN IMMEDIATE``
    already serialises writers): the claim, then the SELECT. Either way Core statements built
    once, where the ORM's ``UPDATE … RETURNING`` and a reload by id cost 1,380 -> 1,077 µs
    (PostgreSQL) of client CPU per decision (bench/README.md)."""
    params = {"decision_id": decision_id, "at": at}
    if is_postgresql(session):
        row = session.execute(_CLAIMED_WITH_APPLICATION, params).first()
    elif session.execute(_CLAIM, params).first() is None:
        return None
    else:
        row = session.execute(_WITH_APPLICATION, params).first()
    return None if row is None else (row[0], row[1])


_DECISIONS = Decision.__table__
_MARK_APPLIED = update(_DECISIONS).where(_DECISIONS.c.id == bindparam("decision_id"),
                                         _DECISIONS.c.applied_at.is_(None)) \
    .values(applied_at=bindparam("at", type_=_DECISIONS.c.applied_at.type))
_CLAIMED = aliased(Decision, _MARK_APPLIED.returning(*_DECISIONS.c).cte("claimed"))
_CLAIMED_WITH_APPLICATION = select(_CLAIMED, Application) \
    .join(Application, Application.id == _CLAIMED.application_id) \
    .execution_options(populate_existing=True)
_CLAIM = _MARK_APPLIED.returning(_DECISIONS.c.id)
_WITH_APPLICATION = select(Decision, Application) \
    .join(Application, Application.id == Decision.application_id) \
    .where(Decision.id == bindparam("decision_id")).execution_options(populate_existing=True)


def _locked_decision(session: Session, decision_id: int) -> Decision | None:
    return session.scalars(select(Decision).where(Decision.id == decision_id)
                           .with_for_update().execution_options(populate_existing=True)).first()


def mark_failed(uow: UnitOfWork, decision_id: int, error: str) -> None:
    """Record why a decision could not be applied (never on one another run applied)."""
    decision = _locked_decision(uow.session, decision_id)
    if decision is not None and decision.applied_at is None:
        decision.error = error


def apply_recorded(runner: Runner, decision_id: int) -> ledger.Result | None:
    """Apply a recorded decision in a transaction of its own; when it is refused, note why on
    the decision (another transaction: the compensation, so the flow does not retry it) and
    raise the DomainError for the caller to show."""
    try:
        with runner.uow() as uow:
            return apply_decision(uow, decision_id)
    except DomainError as exc:
        with runner.uow() as uow:
            mark_failed(uow, decision_id, str(exc))
        raise


def decide(runner: Runner, reference: str, outcome: str, *, present: list[str],
           amount: Decimal | None, motif: str) -> ledger.Result | None:
    """The committee's decision as one use case: recorded in one transaction, then applied
    (``apply_recorded``). The decision stays recorded when the envelope refuses the approval,
    with the refusal noted on it, and the DomainError is raised."""
    with runner.uow() as uow:
        decision_id = record_decision(uow, reference, outcome, present=present,
                                      amount=amount, motif=motif).id
    return apply_recorded(runner, decision_id)


@dataclass(slots=True)
class Applied:
    applied: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)  # {"decision", "error"}


def apply_pending(runner: Runner) -> Applied:
    """Apply every pending decision, each in its own transaction: a refusal never undoes the
    others (it is noted on its decision, which is then no longer pending)."""
    with runner.uow() as uow:
        pending = pending_decisions(uow)
    result = Applied()
    for decision_id in pending:
        try:
            apply_recorded(runner, decision_id)
            result.applied += 1
        except DomainError as exc:
            result.failed.append({"decision": decision_id, "error": str(exc)})
    return result
