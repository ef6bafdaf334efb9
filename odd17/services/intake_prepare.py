"""Intake's pure step (no database): one document as read, validated, and with a snapshot of the
calls and the policy judged, into plain values that intake_store writes.

The values are plain (named tuples of strings, decimals and dates; the document as its JSON
text) so that a second process can prepare them while the first one writes (``odd17 submit``,
odd17.services.intake_worker): unpickling a validated pydantic model costs more (~43 µs) than
validating it again, unpickling a ``Prepared`` ~7 µs. A verdict judged ahead is only a
proposal: the store uses it when the call it resolves under its lock, and the policy, are
the ones it was judged with, and judges the document again otherwise."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any, NamedTuple

from pydantic import ValidationError

from models import Application, Organisation
from odd17.db import json_dumps
from odd17.services.eligibility import outcome_of
from odd17.services.sources import Record
from rules.document import ApplicationDocument, explain
from rules.eligibility import CallDates, EligibilityPolicy, Facts, evaluate

DEDUP_KEY_LENGTH = 600  # applications.dedup_key is varchar(600)


class Lead(NamedTuple):
    identifier: str  # ApplicationDocument.lead_identifier()
    name: str
    kind: str
    siret: str | None
    rna: str | None
    email: str
    contact_name: str | None


class Judged(NamedTuple):
    """Rule results computed ahead, with what they were computed against."""

    call: CallDates
    digest: str  # the policy's
    failed: list[tuple[str, str]]  # (rule, reason), as eligibility.outcome_of gives them
    results: str  # every result, as stored: JSON text (one string sent, not 11 tuples)


class Prepared(NamedTuple):
    """A valid document, as intake_store writes it."""

    source: str
    call: str | None  # the call the document names; None: the one open call
    key: str  # dedup key as stored (fit_key)
    lead: Lead
    title: str
    primary_objective: str | None
    region: str  # official name (COG); "" off the list
    department: str
    requested_amount: Decimal
    total_budget: Decimal
    document: str  # the normalised JSON, as stored
    dump: dict[str, Any] | None  # the same as a dict, in the process that made it (else None)
    judged: Judged | None


class Refused(NamedTuple):
    source: str
    errors: list[dict[str, str]]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What documents are judged with ahead of their transaction: the calls and the day as
    read before, and the policy."""

    calls: Mapping[str, CallDates]
    day: dt.date
    policy: EligibilityPolicy
    digest: str


def msg(language: str, fr: str, en: str) -> str:
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


def resolve_call(name: str | None, calls: Mapping[str, CallDates], day: dt.date,
                 language: str) -> CallDates | dict[str, str]:
    """The call a document goes to (the one it names, else the one open call), or why none."""
    if name is not None:
        call = calls.get(name)
        if call is None:
            known = ", ".join(sorted(calls)) or "aucun"
            return {"field": "call", "message": msg(
                language, f"appel à projets « {name} » inconnu (appels connus : {known})",
                f'unknown call "{name}" (known calls: {known})')}
    else:
        open_calls = [c for c in calls.values() if c.is_open(day)]
        if not open_calls:
            return {"field": "call", "message": _no_open_call(calls, day, language)}
        if len(open_calls) > 1:
            names = ", ".join(sorted(c.id for c in open_calls))
            return {"field": "call", "message": msg(
                language, f"plusieurs appels à projets sont ouverts : précisez « call » ({names})",
                f'several calls are open: set "call" ({names})')}
        call = open_calls[0]
    if day < call.opens_on:
        return {"field": "call", "message": msg(
            language, f"l'appel « {call.id} » n'ouvre que le {call.opens_on.isoformat()}",
            f'call "{call.id}" opens only on {call.opens_on.isoformat()}')}
    if day > call.closes_on:
        return {"field": "call", "message": msg(
            language, f"l'appel « {call.id} » est clos depuis le {call.closes_on.isoformat()}",
            f'call "{call.id}" closed on {call.closes_on.isoformat()}')}
    return call


def _no_open_call(calls: Mapping[str, CallDates], day: dt.date, language: str) -> str:
    upcoming = sorted((c for c in calls.values() if c.opens_on > day), key=lambda c: c.opens_on)
    past = sorted((c for c in calls.values() if c.closes_on < day), key=lambda c: c.closes_on)
    if upcoming:
        c = upcoming[0]
        return msg(language, f"aucun appel à projets n'est ouvert : « {c.id} » ouvrira le "
                    f"{c.opens_on.isoformat()}",
                    f'no call is open: "{c.id}" opens on {c.opens_on.isoformat()}')
    if past:
        c = past[-1]
        return msg(language, f"aucun appel à projets n'est ouvert : « {c.id} » est clos depuis "
                    f"le {c.closes_on.isoformat()}",
                    f'no call is open: "{c.id}" closed on {c.closes_on.isoformat()}')
    return msg(language, "aucun appel à projets n'est configuré (lancez « odd17 init »)",
                "no call is configured (run `odd17 init`)")


def validate(raw: Record, language: str = "fr") -> ApplicationDocument | list[dict[str, str]]:
    if raw.error is not None:
        return [{"field": "(document)", "message": raw.error}]
    if not isinstance(raw.data, dict):
        return [{"field": "(document)", "message": msg(
            language, "le dossier doit être un objet JSON", "the document must be a JSON object"
        )}]
    try:
        doc = ApplicationDocument.model_validate(raw.data)
    except ValidationError as exc:
        return explain(exc, language)
    return overflow(doc, language) or doc


@cache
def _column_limits() -> tuple[tuple[str, int], ...]:
    """(field, length) of each bounded text column a document fills, read once from the
    tables (looking the columns up per document cost ~20 µs a document)."""
    apps, orgs = Application.__table__.c, Organisation.__table__.c
    columns = (("title", apps.title), ("territory.region", apps.region),
               ("territory.department", apps.department), ("lead.email", apps.contact_email),
               ("lead.name", orgs.name), ("lead.siret", orgs.siret), ("lead.rna", orgs.rna),
               ("lead", orgs.identifier))
    lengths = ((name, getattr(column.type, "length", None)) for name, column in columns)
    return tuple((name, length) for name, length in lengths if length is not None)


def _stored_values(doc: ApplicationDocument) -> dict[str, str | None]:
    """The value of each bounded text column a document fills, by field."""
    lead = doc.lead
    return {"title": doc.title, "territory.region": doc.territory.region,
            "territory.department": doc.territory.department, "lead.email": str(lead.email),
            "lead.name": lead.name, "lead.siret": lead.siret, "lead.rna": lead.rna,
            "lead": doc.lead_identifier()}


def overflow(doc: ApplicationDocument, language: str = "fr") -> list[dict[str, str]]:
    """Values that passed the schema but would not fit their column once normalised (upper
    casing ``ß`` gives ``SS``): refused here, per document, rather than by the database for
    the whole batch."""
    values = _stored_values(doc)
    errors = []
    for name, limit in _column_limits():
        value = values[name]
        if value is not None and len(value) > limit:
            errors.append({"field": name, "message": msg(
                language, f"trop long une fois normalisé : au plus {limit} caractère(s)",
                f"too long once normalised: at most {limit} character(s)")})
    return errors


def judge(dump: Mapping[str, Any], call: CallDates, policy: EligibilityPolicy
          ) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
    """The rule results of a document (its normalised JSON) submitted to ``call``, as
    ``eligibility.outcome_of`` gives them."""
    return outcome_of(evaluate(Facts.from_json(dump, call), policy))


def prepare(raw: Record, language: str = "fr", snapshot: Snapshot | None = None, *,
            keep_dump: bool = True) -> Prepared | Refused:
    """One document as read: refused with its errors, or its values; with ``snapshot``,
    judged against the call it resolves there. ``keep_dump=False``: without the dict (what
    a worker process sends)."""
    doc = validate(raw, language)
    if isinstance(doc, list):
        return Refused(raw.source, doc)
    dump = doc.model_dump(mode="json", exclude_none=True)
    judged = None
    if snapshot is not None:
        call = resolve_call(doc.call, snapshot.calls, snapshot.day, language)
        if not isinstance(call, dict):
            failed, results = judge(dump, call, snapshot.policy)
            judged = Judged(call, snapshot.digest, failed, json_dumps(results))
    lead, identifier = doc.lead, doc.lead_identifier()
    return Prepared(
        raw.source, doc.call, fit_key(doc.dedup_key()),
        Lead(identifier, lead.name, lead.kind.value, lead.siret, lead.rna, str(lead.email),
             lead.contact_name),
        doc.title, doc.primary_objective, doc.territory.region or "", doc.territory.department,
        doc.requested_amount, doc.total_budget, json_dumps(dump), dump if keep_dump else None,
        judged)


def prepare_batch(raws: Iterable[Record], language: str = "fr",
                  snapshot: Snapshot | None = None, *,
                  keep_dump: bool = True) -> list[Prepared | Refused]:
    return [prepare(raw, language, snapshot, keep_dump=keep_dump) for raw in raws]
