"""Intake (README « For the applicant »; docs/architecture.md): read documents, validate them,
store the well-formed ones.

Validation happens before any transaction; the write path runs once per batch in one
transaction that first takes the reference counter's lock (``BEGIN IMMEDIATE`` on SQLite, a
row lock on PostgreSQL). Under that lock, duplicate detection, reference numbering and the
inserts see every earlier batch, so two ``odd17 submit`` processes at once can neither skip nor
reuse a reference, nor store the same document twice."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.orm import Session

from models import Application, Call, Organisation, ReferenceCounter, Status, StatusChange
from models.dialect import dialect_insert, is_postgresql
from models.lifecycle import INITIAL
from notifications import payloads
from notifications.outbox import enqueue, message
from odd17.db import unit_of_work
from odd17.services import sources
from odd17.services.batching import gc_paused
from rules.document import ApplicationDocument, explain

SUFFIXES = (".json", ".jsonl")
_IN_CHUNK = 500  # bound on parameters in one IN (...) list
DEDUP_KEY_LENGTH = 600  # applications.dedup_key is varchar(600)


@dataclass(slots=True)
class RawDocument:
    """One document as read from a source: parsed JSON, or why it could not be parsed."""

    source: str
    data: Any = None
    error: str | None = None


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


class Tally:
    """Counts of a run of intake, kept small (a flow returns this, not 10,000 outcomes).
    A plain class on purpose: Prefect walks lists, dicts and dataclasses it is handed."""

    def __init__(self) -> None:
        self.received = 0
        self.duplicates = 0
        self.created: list[str] = []
        self.refused: list[dict[str, Any]] = []

    @classmethod
    def of(cls, outcomes: list[Outcome]) -> Tally:
        tally = cls()
        for o in outcomes:
            tally.received += 1
            if o.status == "refused":
                tally.refused.append({"source": o.source, "errors": o.errors})
            elif o.duplicate:
                tally.duplicates += 1
            else:
                tally.created.append(o.reference or "")
        return tally

    def add(self, other: Tally) -> None:
        self.received += other.received
        self.duplicates += other.duplicates
        self.created.extend(other.created)
        self.refused.extend(other.refused)

    def summary(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "created": len(self.created),
            "duplicates": self.duplicates,
            "refused": self.refused,
            "first_reference": self.created[0] if self.created else None,
            "last_reference": self.created[-1] if self.created else None,
        }


def _msg(language: str, fr: str, en: str) -> str:
    return fr if language == "fr" else en


def _file_error(source: str, fr: str, en: str, language: str) -> RawDocument:
    return RawDocument(source, error=_msg(language, fr, en))


def iter_files(paths: Iterable[str | Path], language: str = "fr") -> Iterator[Path | RawDocument]:
    """Files to read, in a stable order; folders are walked for .json and .jsonl files. A path
    that cannot be used yields a RawDocument carrying the reason instead."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file())
            if not found:
                yield _file_error(str(path), "dossier sans fichier .json ni .jsonl",
                                  "folder holds no .json or .jsonl file", language)
            yield from found
        elif not path.exists():
            yield _file_error(str(path), "fichier introuvable", "no such file", language)
        elif path.suffix not in SUFFIXES:
            yield _file_error(str(path), "extension non prise en charge (attendu .json ou .jsonl)",
                              "unsupported extension (expected .json or .jsonl)", language)
        else:
            yield path


def read_file(path: Path, language: str = "fr") -> list[RawDocument]:
    """The documents of one file, each judged alone (see odd17.services.sources)."""
    try:
        data = sources.read_bytes(path)
    except sources.SourceError:
        return [_file_error(str(path), "lecture impossible", "cannot read", language)]
    if path.suffix == ".json":
        records = [sources.json_document(path, data, language)]
    else:
        records = sources.json_lines(path, data, language)
    return [RawDocument(r.source, r.data, r.error) for r in records]


def read_sources(paths: Iterable[str | Path], language: str = "fr") -> list[RawDocument]:
    docs: list[RawDocument] = []
    for item in iter_files(paths, language):
        with gc_paused():  # one file at a time: memory bounded by the largest file
            docs.extend([item] if isinstance(item, RawDocument) else read_file(item, language))
    return docs


def validate(raw: RawDocument, language: str = "fr") -> ApplicationDocument | list[dict[str, str]]:
    if raw.error is not None:
        return [{"field": "(document)", "message": raw.error}]
    if not isinstance(raw.data, dict):
        return [{"field": "(document)", "message": _msg(
            language, "le dossier doit être un objet JSON", "the document must be a JSON object"
        )}]
    try:
        doc = ApplicationDocument.model_validate(raw.data)
    except ValidationError as exc:
        return explain(exc, language)
    return overflow(doc, language) or doc


def fit_key(key: str) -> str:
    """The dedup key as stored: unchanged when it fits the column, else a prefix and the
    SHA-256 of the whole key. Case folding can triple a title's length (``ﬃ`` -> ``ffi``),
    so a 200-character title may fold past the column; keys that fit keep their old form,
    so documents stored before still match."""
    if len(key) <= DEDUP_KEY_LENGTH:
        return key
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{key[:DEDUP_KEY_LENGTH - len(digest) - 1]}#{digest}"


def _stored_values(doc: ApplicationDocument) -> Iterator[tuple[str, str | None, Any]]:
    """(field, value, column) of each bounded text column a document fills."""
    lead = doc.lead
    yield "title", doc.title, Application.__table__.c.title
    yield "territory.region", doc.territory.region, Application.__table__.c.region
    yield "territory.department", doc.territory.department, Application.__table__.c.department
    yield "lead.email", str(lead.email), Application.__table__.c.contact_email
    yield "lead.name", lead.name, Organisation.__table__.c.name
    yield "lead.siret", lead.siret, Organisation.__table__.c.siret
    yield "lead.rna", lead.rna, Organisation.__table__.c.rna
    yield "lead", doc.lead_identifier(), Organisation.__table__.c.identifier


def overflow(doc: ApplicationDocument, language: str = "fr") -> list[dict[str, str]]:
    """Values that passed the schema but would not fit their column once normalised (upper
    casing ``ß`` gives ``SS``): refused here, per document, rather than by the database for
    the whole batch."""
    errors = []
    for name, value, column in _stored_values(doc):
        limit = getattr(column.type, "length", None)
        if value is not None and limit is not None and len(value) > limit:
            errors.append({"field": name, "message": _msg(
                language, f"trop long une fois normalisé : au plus {limit} caractère(s)",
                f"too long once normalised: at most {limit} character(s)")})
    return errors


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


def _chunks(items: Sequence[Any], size: int = _IN_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _resolve_call(
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
    ids: dict[str, int] = {}
    for chunk in _chunks(list(wanted)):
        rows = session.execute(
            select(Organisation.identifier, Organisation.id).where(
                Organisation.identifier.in_(chunk)
            )
        )
        ids.update(dict(rows.tuples().all()))
    missing = [key for key in wanted if key not in ids]
    if missing:
        new_rows = [
            {
                "identifier": key,
                "name": wanted[key].lead.name,
                "kind": wanted[key].lead.kind.value,
                "siret": wanted[key].lead.siret,
                "rna": wanted[key].lead.rna,
                "email": str(wanted[key].lead.email),
                "created_at": now,
            }
            for key in missing
        ]
        # Core executemany, no RETURNING: the ORM bulk path split batches into thousands of
        # statements and spliced RETURNING rows one by one; reading the new ids back by their
        # unique key is one indexed query per chunk.
        session.execute(insert(Organisation.__table__), new_rows)
        for chunk in _chunks(missing):
            rows_back = session.execute(
                select(Organisation.identifier, Organisation.id).where(
                    Organisation.identifier.in_(chunk)
                )
            )
            ids.update(dict(rows_back.tuples().all()))
    return ids


def store_documents(
    session: Session,
    items: list[tuple[RawDocument, ApplicationDocument]],
    *,
    now: dt.datetime,
    actor: str,
    language: str = "fr",
) -> list[Outcome]:
    """Store validated documents in the caller's transaction; one outcome per item, in order."""
    calls = {c.id: c for c in session.scalars(select(Call))}
    last = _lock_counter(session, now.year)

    outcomes: list[Outcome | None] = [None] * len(items)
    resolved: list[tuple[int, RawDocument, ApplicationDocument, Call, str]] = []
    for i, (raw, doc) in enumerate(items):
        call = _resolve_call(doc, calls, now.date(), language)
        if isinstance(call, dict):
            outcomes[i] = Outcome(raw.source, None, "refused", [call])
        else:
            resolved.append((i, raw, doc, call, fit_key(doc.dedup_key())))

    # Already stored (an earlier batch, another process, or an earlier line of this batch).
    # The lookup is per call so that it uses the (call_id, dedup_key) unique index.
    existing: dict[tuple[str, str], tuple[str, str]] = {}
    keys_by_call: dict[str, set[str]] = {}
    for _, _, _, call, key in resolved:
        keys_by_call.setdefault(call.id, set()).add(key)
    for call_id, keys in keys_by_call.items():
        for chunk in _chunks(sorted(keys)):
            rows = session.execute(
                select(Application.dedup_key, Application.reference, Application.status)
                .where(Application.call_id == call_id, Application.dedup_key.in_(chunk))
            )
            for key, reference, status in rows:
                existing[(call_id, key)] = (reference, str(status))

    fresh: list[tuple[str, RawDocument, ApplicationDocument, Call, str]] = []
    for i, raw, doc, call, key in resolved:
        if (call.id, key) in existing:
            reference, status = existing[(call.id, key)]
            outcomes[i] = Outcome(raw.source, reference, status, duplicate=True)
        else:
            last += 1
            reference = reference_for(now.year, last)
            existing[(call.id, key)] = (reference, INITIAL.value)
            outcomes[i] = Outcome(raw.source, reference, INITIAL.value)
            fresh.append((reference, raw, doc, call, key))

    if fresh:
        org_ids = _organisation_ids(session, [doc for _, _, doc, _, _ in fresh], now)
        app_rows = [
            {
                "reference": reference,
                "call_id": call.id,
                "lead_id": org_ids[doc.lead_identifier()],
                "dedup_key": key,
                "status": INITIAL,
                "title": doc.title,
                "contact_email": str(doc.lead.email),
                "primary_objective": doc.primary_objective,
                "region": doc.territory.region or "",  # official name (COG); "" off the list
                "department": doc.territory.department,
                "requested_amount": doc.requested_amount,
                "total_budget": doc.total_budget,
                "source": raw.source[-500:],
                "document": doc.model_dump(mode="json", exclude_none=True),
                "submitted_at": now,
                "updated_at": now,
            }
            for reference, raw, doc, call, key in fresh
        ]
        # We hold the write lock, so every application with an id above the current maximum
        # is one of ours (see _organisation_ids for why not RETURNING).
        before = session.scalar(select(func.coalesce(func.max(Application.id), 0)))
        session.execute(insert(Application.__table__), app_rows)
        app_ids = dict(
            session.execute(
                select(Application.reference, Application.id).where(Application.id > before)
            ).tuples().all()
        )
        session.execute(
            insert(StatusChange.__table__),
            [
                {
                    "application_id": app_ids[reference],
                    "from_status": None,
                    "to_status": Status.submitted,
                    "actor": actor,
                    "reason": f"dossier reçu ({raw.source[-500:]})",
                    "at": now,
                }
                for reference, raw, *_ in fresh
            ],
        )
        enqueue(session, [
            message(payloads.ApplicationReceived.from_submission(reference, doc, call=call.id,
                                                                 at=now),
                    str(doc.lead.email), key=f"application_received:{reference}", now=now,
                    reference=reference)
            for reference, _, doc, call, _ in fresh
        ])
        session.execute(
            ReferenceCounter.__table__.update()
            .where(ReferenceCounter.year == now.year)
            .values(last=last)
        )
    return [o for o in outcomes if o is not None]


def submit_documents(
    engine: Engine,
    raws: list[RawDocument],
    *,
    now: dt.datetime,
    actor: str,
    language: str = "fr",
) -> list[Outcome]:
    """Validate then store one batch; refused documents are reported, never stored, and never
    stop the others. Returns one outcome per document, in input order."""
    with gc_paused():
        return _submit(engine, raws, now=now, actor=actor, language=language)


def _submit(
    engine: Engine, raws: list[RawDocument], *, now: dt.datetime, actor: str, language: str
) -> list[Outcome]:
    outcomes: list[Outcome | None] = [None] * len(raws)
    valid: list[tuple[int, RawDocument, ApplicationDocument]] = []
    for i, raw in enumerate(raws):
        result = validate(raw, language)
        if isinstance(result, list):
            outcomes[i] = Outcome(raw.source, None, "refused", result)
        else:
            valid.append((i, raw, result))
    if valid:
        with unit_of_work(engine) as session:
            stored = store_documents(
                session, [(raw, doc) for _, raw, doc in valid], now=now, actor=actor,
                language=language,
            )
        for (i, _, _), outcome in zip(valid, stored, strict=True):
            outcomes[i] = outcome
    return [o for o in outcomes if o is not None]
