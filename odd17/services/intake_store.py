"""Intake's write path (see odd17.services.intake): one batch of prepared documents
(odd17.services.intake_prepare) stored in the caller's transaction, with their eligibility
verdicts in the same pass.

The transaction first takes the reference counter's lock (``BEGIN IMMEDIATE`` on SQLite, a row
lock on PostgreSQL). Under that lock, duplicate detection, reference numbering and the inserts
see every earlier batch, so two ``odd17 submit`` processes at once can neither skip nor reuse a
reference, nor store the same document twice. Each application is inserted with its final
status; its evaluation, its two history rows (through ``models.application.history_row``) and
its messages are written in the same transaction: nothing is re-read nor updated afterwards."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from models import Application, Call, Organisation, ReferenceCounter
from models.application import history_row, write_history
from models.bulk import insert_many
from models.dialect import dialect_insert, is_postgresql
from models.lifecycle import INITIAL, Status
from notifications import payloads
from notifications.outbox import enqueue, message
from odd17.services import eligibility
from odd17.services.intake_prepare import Lead, Prepared, judge, resolve_call
from odd17.uow import UnitOfWork
from rules.eligibility import CallDates, EligibilityPolicy

# Bound on the values of one IN (...) list: a batch (ODD17_BATCH_SIZE, 2,000 by default) is
# looked up in one round-trip; SQLite allows 32,766 parameters, PostgreSQL 65,535.
IN_CHUNK = 10_000


@dataclass(slots=True)
class Outcome:
    source: str
    reference: str | None
    status: str  # "refused", or the application's status
    errors: list[dict[str, str]] = field(default_factory=list)
    duplicate: bool = False
    failing: list[str] = field(default_factory=list)  # eligibility rules not met

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "reference": self.reference,
            "status": self.status,
            "errors": self.errors,
            "duplicate": self.duplicate,
            "failing": self.failing,
        }


def reference_for(year: int, seq: int) -> str:
    return f"ODD17-{year}-{seq:04d}"


def _lock_counter(session: Session, year: int) -> int:
    """Take the reference counter's lock for ``year`` and return its last value."""
    session.execute(
        dialect_insert(session, ReferenceCounter).values(year=year, last=0)
        .on_conflict_do_nothing()
    )
    query = select(ReferenceCounter.last).where(ReferenceCounter.year == year)
    if is_postgresql(session):
        query = query.with_for_update()
    return session.execute(query).scalar_one()


def _chunks(items: Sequence[Any], size: int = IN_CHUNK) -> Sequence[Sequence[Any]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def _organisation_ids(
    session: Session, leads: list[Lead], now: dt.datetime
) -> dict[str, int]:
    """Ids of the lead organisations, creating the unknown ones (under the counter lock)."""
    wanted: dict[str, Lead] = {}
    for lead in leads:
        wanted.setdefault(lead.identifier, lead)

    def lookup(keys: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for chunk in _chunks(keys):
            found.update(session.execute(
                select(Organisation.identifier, Organisation.id)
                .where(Organisation.identifier.in_(chunk))).tuples().all())
        return found

    # One INSERT for them all, those already known left as they are (ON CONFLICT DO NOTHING
    # on the unique identifier), then one indexed query for every id: no RETURNING, whose
    # bulk path split batches into thousands of statements and spliced rows one by one.
    insert_many(session, dialect_insert(session, Organisation.__table__).on_conflict_do_nothing(), [
        {"identifier": key, "name": lead.name, "kind": lead.kind, "siret": lead.siret,
         "rna": lead.rna, "email": lead.email, "created_at": now}
        for key, lead in wanted.items()])
    return lookup(list(wanted))


def _stored(session: Session, keys_by_call: dict[str, set[str]]
            ) -> dict[tuple[str, str], tuple[int, str, str]]:
    """(call, dedup key) -> (id, reference, status) of the applications already stored: one
    query per call (so that it uses the (call_id, dedup_key) unique index) and chunk."""
    found: dict[tuple[str, str], tuple[int, str, str]] = {}
    for call_id, keys in keys_by_call.items():
        for chunk in _chunks(sorted(keys)):
            for app_id, key, reference, status in session.execute(
                select(Application.id, Application.dedup_key, Application.reference,
                       Application.status)
                .where(Application.call_id == call_id, Application.dedup_key.in_(chunk))
            ):
                found[(call_id, key)] = (app_id, reference, str(status))
    return found


@dataclass(slots=True)
class _Fresh:
    """A document to store as a new application."""

    outcome: Outcome
    reference: str
    item: Prepared
    call: CallDates


def call_dates(session: Session) -> dict[str, CallDates]:
    """The fund's calls, by id."""
    return {c.id: CallDates(c.id, c.opens_on, c.closes_on) for c in session.scalars(select(Call))}


def store_documents(
    uow: UnitOfWork,
    items: list[Prepared],
    *,
    policy: EligibilityPolicy | None = None,
    language: str = "fr",
) -> list[Outcome]:
    """Store prepared documents (odd17.services.intake_prepare) in the caller's transaction;
    one outcome per item, in order. With ``policy``, each new application is evaluated in the
    same pass (with the results judged ahead when they hold) and stored with its verdict;
    without, it stays ``submitted`` for a later eligibility run (the ``intake`` flow)."""
    session, now = uow.session, uow.now
    calls = call_dates(session)
    last = _lock_counter(session, now.year)

    outcomes: list[Outcome] = []
    resolved: list[tuple[Outcome, Prepared, CallDates]] = []
    keys_by_call: dict[str, set[str]] = {}
    resolved_calls: dict[str | None, CallDates | dict[str, str]] = {}  # by the call named
    for item in items:
        if item.call not in resolved_calls:
            resolved_calls[item.call] = resolve_call(item.call, calls, now.date(), language)
        call = resolved_calls[item.call]
        if isinstance(call, dict):
            outcomes.append(Outcome(item.source, None, "refused", [dict(call)]))
            continue
        outcome = Outcome(item.source, None, INITIAL.value)
        outcomes.append(outcome)
        resolved.append((outcome, item, call))
        keys_by_call.setdefault(call.id, set()).add(item.key)

    # Already stored (an earlier batch, another process); then earlier lines of this batch.
    stored = _stored(session, keys_by_call)
    fresh: dict[tuple[str, str], _Fresh] = {}
    pending_ids: list[int] = []  # stored but not yet evaluated (the intake flow)
    pending: dict[str, list[Outcome]] = {}
    in_batch: list[tuple[Outcome, _Fresh]] = []
    for outcome, item, call in resolved:
        if (call.id, item.key) in stored:
            app_id, reference, outcome.status = stored[(call.id, item.key)]
            outcome.reference, outcome.duplicate = reference, True
            if outcome.status == Status.submitted:
                pending_ids.append(app_id)
                pending.setdefault(reference, []).append(outcome)
        elif (call.id, item.key) in fresh:
            outcome.duplicate = True
            in_batch.append((outcome, fresh[(call.id, item.key)]))
        else:
            last += 1
            outcome.reference = reference_for(now.year, last)
            fresh[(call.id, item.key)] = _Fresh(outcome, outcome.reference, item, call)
    if fresh:
        verdicts = _insert(uow, list(fresh.values()), policy)
        for f in fresh.values():
            if f.reference in verdicts:
                f.outcome.status = verdicts[f.reference].status
                f.outcome.failing = verdicts[f.reference].failing
        for outcome, first in in_batch:  # the status the first copy was stored with
            outcome.reference, outcome.status = first.reference, first.outcome.status
        session.execute(ReferenceCounter.__table__.update()
                        .where(ReferenceCounter.year == now.year).values(last=last))
    if pending and policy is not None:
        # Left waiting by the intake flow or an interrupted run: judged now, as a later
        # eligibility run would (rows another evaluator holds are skipped).
        for verdict in eligibility.evaluate_batch(uow, sorted(set(pending_ids)), policy):
            for outcome in pending[verdict.reference]:
                outcome.status = verdict.status
    return outcomes


def _results(item: Prepared, call: CallDates, policy: EligibilityPolicy, digest: str
             ) -> tuple[list[tuple[str, str]], Any]:
    """The document's failed rules and results (eligibility.outcome_of): those judged ahead
    if they were judged against this call and policy, else judged now."""
    judged = item.judged
    if judged is not None and judged.call == call and judged.digest == digest:
        return judged.failed, orjson.Fragment(judged.results)
    # rare (a call moved since the snapshot): json, which reads whatever odd17.db.json_dumps
    # wrote (its json.dumps fallback included)
    return judge(item.dump if item.dump is not None else json.loads(item.document), call,
                 policy)


def _insert(uow: UnitOfWork, fresh: list[_Fresh], policy: EligibilityPolicy | None
            ) -> dict[str, eligibility.Verdict]:
    """Insert the new applications with their final status, then their evaluations, history
    rows and messages. Returns the verdicts by reference (none without ``policy``)."""
    session, now, actor = uow.session, uow.now, uow.actor
    planned = eligibility.Plan()
    status_of: dict[str, Status] = {}
    if policy is not None:
        digest = policy.digest()
        for f in fresh:  # application ids are bound once inserted (Plan.bind)
            item, lead = f.item, f.item.lead
            verdict = planned.record(
                0, f.reference, INITIAL, *_results(item, f.call, policy, digest),
                payloads.Applicant.fields(f.reference, item.title, lead.name,
                                          lead.contact_name),
                lead.email, digest=digest, now=now, actor=actor)
            status_of[f.reference] = Status(verdict.status)
    org_ids = _organisation_ids(session, [f.item.lead for f in fresh], now)
    # We hold the write lock, so every application with an id above the current maximum
    # is one of ours (see _organisation_ids for why not RETURNING).
    before = session.scalar(select(func.coalesce(func.max(Application.id), 0)))
    insert_many(session, insert(Application.__table__), [
        {"reference": f.reference, "call_id": f.call.id,
         "lead_id": org_ids[f.item.lead.identifier], "dedup_key": f.item.key,
         "status": status_of.get(f.reference, INITIAL), "title": f.item.title,
         "contact_email": f.item.lead.email, "primary_objective": f.item.primary_objective,
         "region": f.item.region, "department": f.item.department,
         "requested_amount": f.item.requested_amount, "total_budget": f.item.total_budget,
         "source": f.item.source[-500:],
         "document": orjson.Fragment(f.item.document),  # serialised once, when prepared
         "submitted_at": now, "updated_at": now}
        for f in fresh])
    app_ids = dict(session.execute(
        select(Application.reference, Application.id).where(Application.id > before)
    ).tuples().all())
    ids = [app_ids[f.reference] for f in fresh]
    if policy is not None:
        planned.bind(ids)
    write_history(session, [
        history_row(app_id, None, INITIAL, actor=actor, at=now, reference=f.reference,
                    reason=f"dossier reçu ({f.item.source[-500:]})")
        for app_id, f in zip(ids, fresh, strict=True)])
    enqueue(session, [
        message(payloads.ApplicationReceived.built(
            f.reference, f.item.title, f.item.lead.name, f.item.lead.contact_name,
            call=f.call.id, at=now), f.item.lead.email,
            key=f"application_received:{f.reference}", now=now, reference=f.reference)
        for f in fresh])
    # then the evaluations, the eligibility moves' history rows and messages
    eligibility.apply(session, planned, moved=False)
    return {v.reference: v for v in planned.verdicts}
