"""Eligibility (README, « Eligibility policy »): evaluate the rule set on stored applications.

Applications waiting in ``submitted`` are evaluated; with ``reevaluate`` those already
``eligible`` or ``ineligible`` are evaluated again (after a policy change), and move between the
two when the verdict changes. Applications already in review or beyond are never touched."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from models import Application, Call, ConcurrentChange, EligibilityEvaluation, Status
from models.application import history_row, write_history
from models.base import rows_matched
from models.bulk import insert_many
from notifications import payloads
from notifications.outbox import enqueue, message
from notifications.payloads import Applicant
from odd17.services.batching import gc_paused
from odd17.uow import UnitOfWork
from rules.eligibility import (
    RULESET_VERSION,
    CallDates,
    EligibilityPolicy,
    Facts,
    evaluate,
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
    def of(cls, verdicts: Iterable[Verdict]) -> Tally:
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


def statuses(reevaluate: bool) -> tuple[Status, ...]:
    """What a run evaluates: the pending applications, or with ``reevaluate`` (after a policy
    change, or for named applications) those already judged too."""
    return REEVALUABLE if reevaluate else PENDING


def candidate_ids(
    uow: UnitOfWork, *, references: list[str] | None = None, reevaluate: bool = False
) -> list[int]:
    """Ids of the applications an eligibility run should evaluate, oldest first."""
    query = select(Application.id).where(Application.status.in_(statuses(reevaluate)))
    if references:
        query = query.where(Application.reference.in_(references))
    return list(uow.session.scalars(query.order_by(Application.id)))


def pending_count(uow: UnitOfWork) -> int:
    """How many applications wait in ``submitted`` for an eligibility run."""
    query = select(func.count()).where(Application.status.in_(PENDING))
    return int(uow.session.scalar(query) or 0)


def outcome_of(results: Iterable[tuple[str, bool, str]]
               ) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
    """(rule, reason) of the rules not passed, and every result as stored (``RuleResult``
    triples; ``RuleResult.as_dict`` inline: ~0.6 µs less an application)."""
    stored: list[dict[str, Any]] = [{"rule": rule, "passed": passed, "reason": reason}
                                    for rule, passed, reason in results]
    return [(r["rule"], r["reason"]) for r in stored if not r["passed"]], stored


@dataclass(slots=True)
class Plan:
    """What an evaluation run will write: computed from a read, applied in one go."""

    evaluations: list[dict[str, Any]] = field(default_factory=list)
    moves: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)

    def judge(self, app_id: int, reference: str, status: Status | str,
              document: dict[str, Any], call: CallDates, policy: EligibilityPolicy, *,
              digest: str, now: dt.datetime, actor: str) -> Verdict:
        """Evaluate one application from its stored document (normalised JSON) and add what
        that writes: its evaluation and, when its status changes, the move, its history row
        (through the one history writer) and the message to its lead (:func:`plan`, for stored
        ones; intake calls :meth:`record`)."""
        failed, results = outcome_of(evaluate(Facts.from_json(document, call), policy))
        return self.record(app_id, reference, status, failed, results,
                           Applicant.of_document(reference, document), document["lead"]["email"],
                           digest=digest, now=now, actor=actor)

    def record(self, app_id: int, reference: str, status: Status | str,
               failed: Sequence[tuple[str, str]], results: Any, applicant: dict[str, Any],
               email: str, *, digest: str, now: dt.datetime, actor: str) -> Verdict:
        """What :meth:`judge` adds, from rule results already computed (intake judges its
        documents as it prepares them, see odd17.services.intake_prepare): ``failed`` and
        ``results`` as :func:`outcome_of` gives them (``results`` may be their JSON text, as
        an ``orjson.Fragment``). ``applicant``: what ``payloads.Applicant.fields``
        gives; ``email``: the lead's."""
        eligible = not failed  # rules.eligibility.is_eligible
        self.evaluations.append({
            "application_id": app_id, "ruleset": RULESET_VERSION, "policy_digest": digest,
            "eligible": eligible, "results": results, "evaluated_at": now, "actor": actor,
        })
        target = Status.eligible if eligible else Status.ineligible
        failing = [rule for rule, _ in failed]
        if target != status:
            self.history.append(history_row(
                app_id, status, target, actor=actor, at=now, reference=reference,
                detail=None if eligible else ", ".join(failing)))
            self.moves.append({"b_id": app_id, "b_from": status, "b_to": target, "b_at": now})
            outcome = (payloads.ApplicationEligible if eligible
                       else payloads.ApplicationIneligible).built(applicant, failed)
            self.messages.append(message(
                outcome, email, key=f"{outcome.event}:{reference}:"
                f"{now.isoformat()}", now=now, reference=reference))
        verdict = Verdict(reference, target.value, str(status), failing)
        self.verdicts.append(verdict)
        return verdict

    def bind(self, ids: list[int]) -> None:
        """Set the application ids of a plan judged before its applications were inserted
        (intake): ``ids[i]`` is the i-th judged one, and each of them moved."""
        if len(self.history) != len(ids) or len(self.evaluations) != len(ids):
            raise ValueError("bind: one evaluation and one move per application expected")
        for app_id, evaluation, change, move in zip(ids, self.evaluations, self.history,
                                                    self.moves, strict=True):
            evaluation["application_id"] = change["application_id"] = move["b_id"] = app_id


def plan(
    rows: Sequence[Any],
    policy: EligibilityPolicy,
    *,
    now: dt.datetime,
    actor: str,
) -> Plan:
    """Evaluate rows of ``ROW_COLUMNS``; pure, no database."""
    digest = policy.digest()
    result = Plan()
    for app_id, reference, status, document, call_id, opens_on, closes_on in rows:
        result.judge(app_id, reference, status, document, CallDates(call_id, opens_on, closes_on),
                     policy, digest=digest, now=now, actor=actor)
    return result


def apply(session: Session, planned: Plan, *, moved: bool = True) -> None:
    """Write a plan: evaluations, status moves guarded by the status they were planned from,
    history, messages. ``moved=False``: the statuses are already written (intake inserts the
    final status). If any application moved meanwhile, raise ``ConcurrentChange``; the
    caller's transaction then rolls back everything."""
    if planned.evaluations:
        insert_many(session, insert(EligibilityEvaluation.__table__), planned.evaluations)
    if moved and planned.moves:
        table = Application.__table__
        result = session.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"), table.c.status == bindparam("b_from"))
            .values(status=bindparam("b_to"), updated_at=bindparam("b_at")),
            planned.moves,
        )
        # exactly one row per move: a driver that cannot count (-1) is not taken as success
        if rows_matched(result) != len(planned.moves):
            raise ConcurrentChange(
                "des dossiers ont changé de statut pendant l'évaluation ; relancez l'évaluation"
            )
    write_history(session, planned.history)
    enqueue(session, planned.messages)


def evaluate_batch(
    uow: UnitOfWork,
    ids: list[int],
    policy: EligibilityPolicy | None = None,
    *,
    reevaluate: bool = False,
) -> list[Verdict]:
    """Evaluate the given applications in the caller's transaction: one SELECT, one INSERT of
    evaluations, one executemany UPDATE, one INSERT of history rows. ``policy`` defaults to
    the fund's (``uow.config``)."""
    if not ids:
        return []
    with gc_paused():
        rows = uow.session.execute(
            select(*ROW_COLUMNS).join(Call, Call.id == Application.call_id)
            .where(Application.id.in_(ids), Application.status.in_(statuses(reevaluate)))
            .order_by(Application.id)
            # rows another evaluator holds are its work: skipped, not waited for nor redone.
            # Only the applications are locked: locking the joined call row too (FOR UPDATE's
            # default) made a concurrent evaluator skip every application of that call.
            .with_for_update(skip_locked=True, of=Application)
        ).all()
        planned = plan(rows, policy or uow.config.policy(), now=uow.now, actor=uow.actor)
        apply(uow.session, planned)
    return planned.verdicts


def evaluate_next(
    uow: UnitOfWork,
    policy: EligibilityPolicy | None = None,
    *,
    after_id: int,
    limit: int,
    reevaluate: bool = False,
) -> tuple[list[Verdict], int | None]:
    """Evaluate the next ``limit`` candidates with an id above ``after_id``, in the caller's
    transaction. Returns the verdicts and the cursor for the next call (``None``: done).
    A run that dies between two calls loses nothing: the next run starts from the database."""
    ids = list(uow.session.scalars(
        select(Application.id)
        .where(Application.status.in_(statuses(reevaluate)), Application.id > after_id)
        .order_by(Application.id)
        .limit(limit)
    ))
    if not ids:
        return [], None
    return evaluate_batch(uow, ids, policy, reevaluate=reevaluate), ids[-1]


def preview(uow: UnitOfWork, reference: str,
            policy: EligibilityPolicy | None = None) -> Verdict | None:
    """What re-evaluating one application would give, writing nothing (the fund manager's
    dry run): its verdict under ``policy`` (default: the fund's), or ``None`` when it is past
    re-evaluation (in review or beyond)."""
    rows = uow.session.execute(
        select(*ROW_COLUMNS).join(Call, Call.id == Application.call_id)
        .where(Application.reference == reference.strip().upper(),
               Application.status.in_(REEVALUABLE))).all()
    planned = plan(rows, policy or uow.config.policy(), now=uow.now, actor=uow.actor)
    return planned.verdicts[0] if planned.verdicts else None
