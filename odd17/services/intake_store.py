"""Intake's write path (see odd17.services.intake): one batch of validated documents stored in
the caller's transaction, eligibility evaluated in the same pass.

The transaction first takes the reference counter's lock (``BEGIN IMMEDIATE`` on SQLite, a row
lock on PostgreSQL). Under that lock, duplicate detection, reference numbering and the inserts
see every earlier batch, so two ``odd17 submit`` processes at once can neither skip nor reuse a
reference, nor store the same document twice. Each application is inserted with its final
status; its evaluation, its two history rows (through ``models.application.history_row``) and
its messages are written in the same transaction: nothing is re-read nor updated afterwards."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

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
from odd17.services.sources import Record
from odd17.uow import UnitOfWork
from rules.document import ApplicationDocument
from rules.eligibility import CallDates, EligibilityPolicy

DEDUP_KEY_LENGTH = 600  # applications.dedup_key is varchar(600)
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


def _msg(language: str, fr: str, en: str) -> str:
    return fr if language == "fr" else en


def fit_key(key: str) -> str:
    """The dedup key as stored: unchanged when it fits the column, else a prefix and the
    SHA-256 of the whole key. Case folding can triple a title's length (``ﬃ`` -> ``ffi``),
    so a 200-character title may fold past the column; keys that fit keep their old form,
    so documents stored before still match."""
    if len(key) <= DEDUP_KEY_LENGTH:
        return key
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{key[:DEDUP_KEY_LENGTH - len(digest) - 1]}#{digest}"


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


def resolve_call(
    doc: ApplicationDocument, calls: dict[str, Call], day: dt.date, language: str
) -> Call | dict[str, str]:
    if doc.call is not None:
        call = calls.get(doc.call)
        if call is None:
            known = ", ".join(sorted(calls)) or "aucun"
            return {"field": "call", "message": _msg(
                language, f"appel à projets « {doc.call} » inconnu (appels connus : {known})",
                f'unknown call "{doc.call}" (known calls: {known})')}
    else:
        open_calls = [c for c in calls.values() if c.is_open(day)]
        if not open_calls:
            return {"field": "call", "message": _no_open_call(calls, day, language)}
        if len(open_calls) > 1:
            names = ", ".join(sorted(c.id for c in open_calls))
            return {"field": "call", "message": _msg(
                language, f"plusieurs appels à projets sont ouverts : précisez « call » ({names})",
                f'several calls are open: set "call" ({names})')}
        call = open_calls[0]
    if day < call.opens_on:
        return {"field": "call", "message": _msg(
            language, f"l'appel « {call.id} » n'ouvre que le {call.opens_on.isoformat()}",
            f'call "{call.id}" opens only on {call.opens_on.isoformat()}')}
    if day > call.closes_on:
        return {"field": "call", "message": _msg(
            language, f"l'appel « {call.id} » est clos depuis le {call.closes_on.isoformat()}",
            f'call "{call.id}" closed on {call.closes_on.isoformat()}')}
    return call


def _no_open_call(calls: dict[str, Call], day: dt.date, language: str) -> str:
    upcoming = sorted((c for c in calls.values() if c.opens_on > day), key=lambda c: c.opens_on)
    past = sorted((c for c in calls.values() if c.closes_on < day), key=lambda c: c.closes_on)
    if upcoming:
        c = upcoming[0]
        return _msg(language, f"aucun appel à projets n'est ouvert : « {c.id} » ouvrira le "
                    f"{c.opens_on.isoformat()}",
                    f'no call is open: "{c.id}" opens on {c.opens_on.isoformat()}')
    if past:
        c = past[-1]
        return _msg(language, f"aucun appel à projets n'est ouvert : « {c.id} » est clos depuis "
                    f"le {c.closes_on.isoformat()}",
                    f'no call is open: "{c.id}" closed on {c.closes_on.isoformat()}')
    return _msg(language, "aucun appel à projets n'est configuré (lancez « odd17 init »)",
                "no call is configured (run `odd17 init`)")


def _organisation_ids(
    session: Session, docs: list[ApplicationDocument], now: dt.datetime
) -> dict[str, int]:
    """Ids of the lead organisations, creating the unknown ones (under the counter lock)."""
    wanted: dict[str, ApplicationDocument] = {}
    for doc in docs:
        wanted.setdefault(doc.lead_identifier(), doc)

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
        {"identifier": key, "name": doc.lead.name, "kind": doc.lead.kind.value,
         "siret": doc.lead.siret, "rna": doc.lead.rna, "email": str(doc.lead.email),
         "created_at": now}
        for key, doc in wanted.items()])
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
    source: str
    doc: ApplicationDocument
    call: Call
    key: str
    document: dict[str, Any]  # normalised JSON: stored, and what eligibility reads


def store_documents(
    uow: UnitOfWork,
    items: list[tuple[Record, ApplicationDocument]],
    *,
    policy: EligibilityPolicy | None = None,
    language: str = "fr",
) -> list[Outcome]:
    """Store validated documents in the caller's transaction; one outcome per item, in order.
    With ``policy``, each new application is evaluated in the same pass and stored with its
    verdict; without, it stays ``submitted`` for a later eligibility run (the ``intake``
    flow)."""
    session, now = uow.session, uow.now
    calls = {c.id: c for c in session.scalars(select(Call))}
    last = _lock_counter(session, now.year)

    outcomes: list[Outcome] = []
    resolved: list[tuple[Outcome, Record, ApplicationDocument, Call, str]] = []
    keys_by_call: dict[str, set[str]] = {}
    resolved_calls: dict[str | None, Call | dict[str, str]] = {}  # it depends on doc.call only
    for raw, doc in items:
        if doc.call not in resolved_calls:
            resolved_calls[doc.call] = resolve_call(doc, calls, now.date(), language)
        call = resolved_calls[doc.call]
        if isinstance(call, dict):
            outcomes.append(Outcome(raw.source, None, "refused", [dict(call)]))
            continue
        outcome = Outcome(raw.source, None, INITIAL.value)
        outcomes.append(outcome)
        key = fit_key(doc.dedup_key())
        resolved.append((outcome, raw, doc, call, key))
        keys_by_call.setdefault(call.id, set()).add(key)

    # Already stored (an earlier batch, another process); then earlier lines of this batch.
    stored = _stored(session, keys_by_call)
    fresh: dict[tuple[str, str], _Fresh] = {}
    pending_ids: list[int] = []  # stored but not yet evaluated (the intake flow)
    pending: dict[str, list[Outcome]] = {}
    in_batch: list[tuple[Outcome, _Fresh]] = []
    for outcome, raw, doc, call, key in resolved:
        if (call.id, key) in stored:
            app_id, reference, outcome.status = stored[(call.id, key)]
            outcome.reference, outcome.duplicate = reference, True
            if outcome.status == Status.submitted:
                pending_ids.append(app_id)
                pending.setdefault(reference, []).append(outcome)
        elif (call.id, key) in fresh:
            outcome.duplicate = True
            in_batch.append((outcome, fresh[(call.id, key)]))
        else:
            last += 1
            outcome.reference = reference_for(now.year, last)
            fresh[(call.id, key)] = _Fresh(outcome, outcome.reference, raw.source, doc, call,
                                           key, doc.model_dump(mode="json", exclude_none=True))
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


def _insert(uow: UnitOfWork, fresh: list[_Fresh], policy: EligibilityPolicy | None
            ) -> dict[str, eligibility.Verdict]:
    """Insert the new applications with their final status, then their evaluations, history
    rows and messages. Returns the verdicts by reference (none without ``policy``)."""
    session, now, actor = uow.session, uow.now, uow.actor
    planned = eligibility.Plan()
    status_of: dict[str, Status] = {}
    if policy is not None:
        digest = policy.digest()
        dates = {c.id: CallDates(c.id, c.opens_on, c.closes_on) for c in {f.call for f in fresh}}
        for f in fresh:  # application ids are bound once inserted (Plan.bind)
            verdict = planned.judge(0, f.reference, INITIAL, f.document, dates[f.call.id],
                                    policy, digest=digest, now=now, actor=actor)
            status_of[f.reference] = Status(verdict.status)
    org_ids = _organisation_ids(session, [f.doc for f in fresh], now)
    # We hold the write lock, so every application with an id above the current maximum
    # is one of ours (see _organisation_ids for why not RETURNING).
    before = session.scalar(select(func.coalesce(func.max(Application.id), 0)))
    insert_many(session, insert(Application.__table__), [
        {"reference": f.reference, "call_id": f.call.id,
         "lead_id": org_ids[f.doc.lead_identifier()], "dedup_key": f.key,
         "status": status_of.get(f.reference, INITIAL), "title": f.doc.title,
         "contact_email": str(f.doc.lead.email), "primary_objective": f.doc.primary_objective,
         "region": f.doc.territory.region or "",  # official name (COG); "" off the list
         "department": f.doc.territory.department,
         "requested_amount": f.doc.requested_amount, "total_budget": f.doc.total_budget,
         "source": f.source[-500:], "document": f.document,
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
                    reason=f"dossier reçu ({f.source[-500:]})")
        for app_id, f in zip(ids, fresh, strict=True)])
    enqueue(session, [
        message(payloads.ApplicationReceived.built(f.reference, f.doc, call=f.call.id, at=now),
                str(f.doc.lead.email), key=f"application_received:{f.reference}", now=now,
                reference=f.reference)
        for f in fresh])
    # then the evaluations, the eligibility moves' history rows and messages
    eligibility.apply(session, planned, moved=False)
    return {v.reference: v for v in planned.verdicts}
