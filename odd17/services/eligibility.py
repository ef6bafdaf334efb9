"""Eligibility (README, « Eligibility policy »): evaluate the rule set on stored applications.

Applications waiting in ``submitted`` are evaluated; with ``reevaluate`` those already
``eligible`` or ``ineligible`` are evaluated again (after a policy change), and move between the
two when the verdict changes. Applications already in review or beyond are never touched."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, bindparam, insert, select, update
from sqlalchemy.orm import Session

from models import (
    Application,
    Call,
    ConcurrentChange,
    EligibilityEvaluation,
    Status,
    StatusChange,
)
from models.base import rows_matched
from models.lifecycle import check_transition
from notifications import payloads
from notifications.outbox import enqueue, message
from odd17.db import unit_of_work
from odd17.services.batching import gc_paused
from rules.eligibility import (
    RULESET_VERSION,
    CallDates,
    EligibilityPolicy,
    Facts,
    evaluate,
    is_eligible,
)

PENDING = (Status.submitted,)
REEVALUABLE = (Status.submitted, Status.eligible, Status.ineligible)
# What ``plan`` reads of an application: the document and the dates of its call.
ROW_COLUMNS = (Application.id, Application.reference, Application.status, Application.document,
               Call.id, Call.opens_on, Call.closes_on)


@dataclass(slots=True)
class Verdict:
    reference: str
    status: str
    previous: str
    failing: list[str]


class Tally:
    """Counts of an eligibility run: by verdict, failures by rule, and the verdicts that
    changed on re-evaluation (a plain class so that Prefect does not walk it)."""

    def __init__(self) -> None:
        self.evaluated = 0
        self.eligible = 0
        self.failing: dict[str, int] = {}
        self.changed: list[dict[str, Any]] = []

    @classmethod
    def of(cls, verdicts: list[Verdict]) -> Tally:
        tally = cls()
        for v in verdicts:
            tally.evaluated += 1
            tally.eligible += v.status == Status.eligible
            for rule in v.failing:
                tally.failing[rule] = tally.failing.get(rule, 0) + 1
            if v.previous != Status.submitted and v.previous != v.status:
                tally.changed.append({"reference": v.reference, "previous": v.previous,
                                      "status": v.status, "failing": v.failing})
        return tally

    def add(self, other: Tally) -> None:
        self.evaluated += other.evaluated
        self.eligible += other.eligible
        for rule, n in other.failing.items():
            self.failing[rule] = self.failing.get(rule, 0) + n
        self.changed.extend(other.changed)

    def summary(self) -> dict[str, Any]:
        return {
            "evaluated": self.evaluated,
            "eligible": self.eligible,
            "ineligible": self.evaluated - self.eligible,
            "failing_by_rule": dict(sorted(self.failing.items())),
            "changed": self.changed,
        }


def candidate_ids(
    engine: Engine, *, references: list[str] | None = None, reevaluate: bool = False
) -> list[int]:
    """Ids of the applications an eligibility run should evaluate, oldest first."""
    statuses = REEVALUABLE if reevaluate or references else PENDING
    query = select(Application.id).where(Application.status.in_(statuses))
    if references:
        query = query.where(Application.reference.in_(references))
    with unit_of_work(engine) as session:
        return list(session.scalars(query.order_by(Application.id)))


@dataclass(slots=True)
class Plan:
    """What an evaluation run will write: computed from a read, applied in one go."""

    evaluations: list[dict[str, Any]]
    moves: list[dict[str, Any]]
    history: list[dict[str, Any]]
    verdicts: list[Verdict]
    messages: list[dict[str, Any]]


def plan(
    rows: Sequence[Any],
    policy: EligibilityPolicy,
    *,
    now: dt.datetime,
    actor: str,
) -> Plan:
    """Evaluate rows of ``ROW_COLUMNS``; pure, no database."""
    digest = policy.digest()
    result = Plan([], [], [], [], [])
    for app_id, reference, status, document, call_id, opens_on, closes_on in rows:
        call = CallDates(call_id, opens_on, closes_on)
        results = evaluate(Facts.from_json(document, call), policy)
        eligible = is_eligible(results)
        result.evaluations.append({
            "application_id": app_id,
            "ruleset": RULESET_VERSION,
            "policy_digest": digest,
            "eligible": eligible,
            "results": [r.as_dict() for r in results],
            "evaluated_at": now,
            "actor": actor,
        })
        target = Status.eligible if eligible else Status.ineligible
        failing = [r.rule for r in results if not r.passed]
        if target != status:
            meaning = check_transition(status, target, reference)
            why = meaning if eligible else f"{meaning} : {', '.join(failing)}"
            result.moves.append({"b_id": app_id, "b_from": status, "b_to": target, "b_at": now})
            result.history.append({
                "application_id": app_id, "from_status": status, "to_status": target,
                "actor": actor, "reason": why, "at": now,
            })
            outcome = (payloads.ApplicationEligible if eligible
                       else payloads.ApplicationIneligible).from_evaluation(
                reference, document, [(r.rule, r.reason) for r in results if not r.passed])
            result.messages.append(message(
                outcome, document["lead"]["email"], key=f"{outcome.event}:{reference}:"
                f"{now.isoformat()}", now=now, reference=reference))
        result.verdicts.append(Verdict(reference, target.value, str(status), failing))
    return result


def apply(session: Session, planned: Plan) -> None:
    """Write a plan: evaluations, status moves guarded by the status they were planned from,
    history. If any application moved meanwhile, raise ``ConcurrentChange``; the caller's
    transaction then rolls back everything."""
    if planned.evaluations:
        session.execute(insert(EligibilityEvaluation.__table__), planned.evaluations)
    if planned.moves:
        table = Application.__table__
        result = session.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"), table.c.status == bindparam("b_from"))
            .values(status=bindparam("b_to"), updated_at=bindparam("b_at")),
            planned.moves,
        )
        if rows_matched(result) not in (-1, len(planned.moves)):
            raise ConcurrentChange(
                "des dossiers ont changé de statut pendant l'évaluation ; relancez l'évaluation"
            )
        session.execute(insert(StatusChange.__table__), planned.history)
        enqueue(session, planned.messages)


def evaluate_batch(
    session: Session,
    ids: list[int],
    policy: EligibilityPolicy,
    *,
    now: dt.datetime,
    actor: str,
    reevaluate: bool = False,
) -> list[Verdict]:
    """Evaluate the given applications in the caller's transaction: one SELECT, one INSERT of
    evaluations, one executemany UPDATE, one INSERT of history rows."""
    statuses = REEVALUABLE if reevaluate else PENDING
    with gc_paused():
        rows = session.execute(
            select(*ROW_COLUMNS).join(Call, Call.id == Application.call_id)
            .where(Application.id.in_(ids), Application.status.in_(statuses))
            .order_by(Application.id)
            # rows another evaluator holds are its work: skipped, not waited for nor redone.
            # Only the applications are locked: locking the joined call row too (FOR UPDATE's
            # default) made a concurrent evaluator skip every application of that call.
            .with_for_update(skip_locked=True, of=Application)
        ).all()
        planned = plan(rows, policy, now=now, actor=actor)
        apply(session, planned)
    return planned.verdicts


def evaluate_next(
    engine: Engine,
    policy: EligibilityPolicy,
    *,
    after_id: int,
    limit: int,
    now: dt.datetime,
    actor: str,
    reevaluate: bool = False,
) -> tuple[list[Verdict], int | None]:
    """Evaluate the next ``limit`` candidates with an id above ``after_id``, in one
    transaction. Returns the verdicts and the cursor for the next call (``None``: done).
    A run that dies between two calls loses nothing: the next run starts from the database."""
    statuses = REEVALUABLE if reevaluate else PENDING
    with unit_of_work(engine) as session:
        ids = list(session.scalars(
            select(Application.id)
            .where(Application.status.in_(statuses), Application.id > after_id)
            .order_by(Application.id)
            .limit(limit)
        ))
        if not ids:
            return [], None
        verdicts = evaluate_batch(session, ids, policy, now=now, actor=actor,
                                  reevaluate=reevaluate)
        return verdicts, ids[-1]


def evaluate_ids(
    engine: Engine,
    ids: list[int],
    policy: EligibilityPolicy,
    *,
    now: dt.datetime,
    actor: str,
    reevaluate: bool = False,
) -> list[Verdict]:
    with unit_of_work(engine) as session:
        return evaluate_batch(session, ids, policy, now=now, actor=actor, reevaluate=reevaluate)
