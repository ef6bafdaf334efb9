"""Read models of the ledger (README « For the finance officer »; docs/architecture.md): the
finance report, the tranches due, a grant's detail and the ledger's entries, filtered and paged
(``ledger_page``, ``ledger_batch``). They only read; money moves in
``odd17/services/ledger.py``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, literal, or_, select, tuple_
from sqlalchemy.orm import Session, selectinload

from models import (
    Application,
    Balance,
    EntryKind,
    Grant,
    LedgerDay,
    LedgerEntry,
    NotFound,
    Organisation,
    Status,
    Tranche,
)
from models.base import UTCDateTime
from models.ledger import TOTAL
from odd17.services.balances import ZERO, fund_id
from rules.labels import ENTRY_KIND_LABELS, OBJECTIVE_LABELS, entry_kind_label
from rules.money import as_str
from rules.text import sort_key

if TYPE_CHECKING:
    from odd17.uow import UnitOfWork

# The read models, typed (issue 11): the CLI's --json prints them as they are, the web
# renders them; amounts are strings with two decimals (rules.money.as_str), dates ISO.


class Amounts(TypedDict):
    envelope: str
    committed: str
    disbursed: str
    available: str


class Split(TypedDict):
    key: str
    committed: str
    disbursed: str
    grants: int


class Day(Amounts):
    day: str


class TrancheDue(TypedDict):
    reference: str
    title: str
    tranche: int
    label: str
    amount: str
    paid: str
    left: str
    due_on: str
    beneficiary: str


class FinanceReport(Amounts):
    currency: str
    grants: int
    alert: bool
    alert_threshold: str
    by_objective: list[Split]
    by_region: list[Split]
    history: list[Day]
    as_of: NotRequired[str]
    tranches_due: NotRequired[list[TrancheDue]]


class TrancheDetail(TypedDict):
    number: int
    label: str
    amount: str
    due_on: str
    paid_amount: str | None
    paid_on: str | None
    payment_reference: str | None


class GrantDetail(TypedDict):
    awarded: str
    disbursed: str
    released: str
    outstanding: str
    approved_at: str
    tranches: list[TrancheDetail]


def _amounts(row: Balance | LedgerDay) -> Amounts:
    available = row.envelope - row.committed - row.disbursed
    return {"envelope": as_str(row.envelope), "committed": as_str(row.committed),
            "disbursed": as_str(row.disbursed), "available": as_str(available)}


def finance_report(uow: UnitOfWork, *, on: dt.date | None = None) -> FinanceReport:
    """Envelope, committed, disbursed, available, grants, splits and history: read from the
    running balances, never by summing the ledger (constant time in the ledger's size). With
    ``on``, also the tranches due that day (``tranches_due``) and the date itself (``as_of``).
    The alert threshold shown is the unit of work's fund configuration's."""
    session, alert_threshold = uow.session, uow.context.alert_threshold
    fund = fund_id(session)
    rows = session.scalars(select(Balance).where(Balance.fund_id == fund)).all()
    total = next((r for r in rows if r.dimension == TOTAL), None)
    if total is None:
        raise NotFound("l'enveloppe n'est pas ouverte : lancez « odd17 init »")

    def split_by(dimension: str) -> list[Split]:
        return [
            {"key": r.key, "committed": as_str(r.committed),
             "disbursed": as_str(r.disbursed), "grants": r.grants}
            for r in sorted((r for r in rows if r.dimension == dimension), key=lambda r: r.key)
            if r.grants or r.committed or r.disbursed
        ]

    days = session.scalars(select(LedgerDay).where(LedgerDay.fund_id == fund)
                           .order_by(LedgerDay.day)).all()
    amounts = _amounts(total)
    report = FinanceReport(
        envelope=amounts["envelope"], committed=amounts["committed"],
        disbursed=amounts["disbursed"], available=amounts["available"], currency="EUR",
        grants=total.grants, alert=total.alert, alert_threshold=str(alert_threshold),
        by_objective=split_by("objective"), by_region=split_by("region"),
        history=[Day(day=d.day.isoformat(), **_amounts(d)) for d in days],
    )
    if on is not None:
        report["as_of"] = on.isoformat()
        report["tranches_due"] = tranches_due(uow, on)
    return report


def tranches_due(uow: UnitOfWork, on: dt.date) -> list[TrancheDue]:
    """Tranches due on ``on`` and not paid, oldest first, with the beneficiary (the lead) and
    what is left to pay on each (``left``: the amount less what was already ``paid``)."""
    rows = uow.session.execute(
        select(Application.reference, Application.title, Tranche.number, Tranche.label,
               Tranche.amount, Tranche.paid_amount, Tranche.due_on,
               Organisation.name.label("beneficiary"))
        .join(Organisation, Organisation.id == Application.lead_id)
        .join(Grant, Grant.application_id == Application.id)
        .join(Tranche, Tranche.grant_id == Grant.id)
        .where(Tranche.paid_on.is_(None), Tranche.due_on <= on,
               # a partly paid tranche stays due for the rest; one of 0,00 € never is
               func.coalesce(Tranche.paid_amount, 0) < Tranche.amount,
               Application.status.in_((Status.approved, Status.active)))
        .order_by(Tranche.due_on, Application.reference, Tranche.number)
    )
    return [{"reference": r.reference, "title": r.title, "tranche": r.number,
             "label": r.label, "amount": as_str(r.amount),
             "paid": as_str(r.paid_amount or ZERO),
             "left": as_str(r.amount - (r.paid_amount or ZERO)), "due_on": r.due_on.isoformat(),
             "beneficiary": r.beneficiary}
            for r in rows]


def grant_detail(session: Session, app: Application) -> GrantDetail | None:
    grant = session.scalars(select(Grant).where(Grant.application_id == app.id)
                            .options(selectinload(Grant.tranches))).first()
    if grant is None:
        return None
    return {
        "awarded": as_str(grant.awarded), "disbursed": as_str(grant.disbursed),
        "released": as_str(grant.released), "outstanding": as_str(grant.outstanding),
        "approved_at": grant.approved_at.isoformat(),
        "tranches": [
            {"number": t.number, "label": t.label, "amount": as_str(t.amount),
             "due_on": t.due_on.isoformat(),
             "paid_amount": as_str(t.paid_amount) if t.paid_amount is not None else None,
             "paid_on": t.paid_on.isoformat() if t.paid_on else None,
             "payment_reference": t.payment_reference}
            for t in grant.tranches
        ],
    }


# --- the ledger entry by entry (the finance workspace's « grand livre ») ---------------------

LEDGER_PER_PAGE = 50
SEARCH_MAX = 100
GRANTS_LISTED = 1000  # a search matching more grants than this filters through a subquery
_PAYMENT = "disburse:"  # a payment's idempotency key is its payment reference, prefixed


@dataclass(frozen=True)
class LedgerQuery:
    """The ledger's filters, every one optional: dates (inclusive, in the fund's zone), kind,
    a search (application reference or title, payment reference, entry number), the grant's
    objective or region; and the page."""

    start: dt.date | None = None
    end: dt.date | None = None
    kind: EntryKind | None = None
    search: str | None = None
    objective: str | None = None
    region: str | None = None
    page: int = 1


LEDGER_FIELDS = ("start", "end", "kind", "search", "objective", "region", "page")


def _day(text: str) -> dt.date:
    for parse in (dt.date.fromisoformat, lambda t: dt.datetime.strptime(t, "%d/%m/%Y").date()):
        try:
            return parse(text)
        except ValueError:
            continue
    raise ValueError(f"date invalide « {text} » : attendu JJ/MM/AAAA ou AAAA-MM-JJ")


def _ledger_field(name: str, text: str) -> object:
    """One filter's value, or a ValueError with the French reason."""
    if name in ("start", "end"):
        return _day(text)
    if name == "kind":
        if text not in ENTRY_KIND_LABELS:
            raise ValueError(f"nature inconnue « {text} »")
        return EntryKind(text)
    if name == "objective":
        if text not in OBJECTIVE_LABELS:
            raise ValueError(f"objectif inconnu « {text} »")
        return text
    if name == "page":
        if not text.isdigit() or not 1 <= int(text) <= 10**7:
            raise ValueError(f"numéro de page invalide « {text} »")
        return int(text)
    if len(text) > SEARCH_MAX:
        raise ValueError(f"au plus {SEARCH_MAX} caractères")
    return text


def parse_ledger_query(raw: Mapping[str, str]) -> tuple[LedgerQuery, dict[str, str]]:
    """The query from a form (blank fields: any) and each bad field's French message. With
    any error the query is the empty one: the page then shows the whole ledger."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name in LEDGER_FIELDS:
        text = (raw.get(name) or "").strip()
        if text:
            try:
                values[name] = _ledger_field(name, text)
            except ValueError as exc:
                errors[name] = str(exc)
    if "start" in values and "end" in values and values["start"] > values["end"]:
        errors["end"] = "la date de fin précède la date de début"
    return (LedgerQuery() if errors else LedgerQuery(**values)), errors


class LedgerLine(TypedDict):
    number: int
    at: str
    kind: str
    kind_label: str
    reference: str | None
    title: str | None
    amount: str
    committed: str         # the fund's balances after the entry
    disbursed: str
    available: str
    payment_reference: str | None
    actor: str
    note: str | None


class LedgerPage(TypedDict):
    total: int
    page: int
    pages: int
    per_page: int
    rows: list[LedgerLine]
    regions: list[str]     # the regions with a grant, for the filter's choices


def _bound(day: dt.date, zone: ZoneInfo) -> dt.datetime | None:
    """Midnight of ``day`` in the fund's zone, in UTC; None past the calendar's ends."""
    try:
        return dt.datetime.combine(day, dt.time(), tzinfo=zone).astimezone(dt.UTC)
    except OverflowError:
        return None


def _ledger_filters(uow: UnitOfWork, query: LedgerQuery) -> list[ColumnElement[bool]]:
    """In SQL, each served by an index (migration 0011): the dates by (at, id), the kind by
    (kind, at, id), the grant's objective or region and the search by ``grant_id``."""
    entry, zone = LedgerEntry, uow.context.zone
    found: list[ColumnElement[bool]] = []
    if query.start and (low := _bound(query.start, zone)) is not None:
        found.append(entry.at >= low)
    if query.end and (high := _bound(query.end + dt.timedelta(days=1), zone)) is not None:
        found.append(entry.at < high)
    if query.kind:
        found.append(entry.kind == query.kind)
    grants = [c for c in (Grant.objective == query.objective if query.objective else None,
                          Grant.region == query.region if query.region else None) if c is not None]
    if grants:
        found.append(entry.grant_id.in_(select(Grant.id).where(*grants)))
    if query.search:
        found.append(_ledger_search(uow, query.search))
    return found


def _ledger_search(uow: UnitOfWork, text: str) -> ColumnElement[bool]:
    """The application's reference or title (as typed or ignoring case, ``%`` and ``_``
    literal), the payment reference exactly, or the entry's number. The grants found first:
    a list of ids lets PostgreSQL OR three index scans (a subquery there scans the ledger)."""
    lowered = text.lower()
    found = (select(Grant.id).join(Application, Application.id == Grant.application_id)
             .where(or_(*(clause for column in (Application.reference, Application.title)
                          for clause in (column.contains(text, autoescape=True),
                                         func.lower(column).contains(lowered,
                                                                     autoescape=True))))))
    grant_ids = uow.session.scalars(found.limit(GRANTS_LISTED + 1)).all()
    clauses = [LedgerEntry.idempotency_key == _PAYMENT + text]
    if grant_ids:  # past the list's size (SQLite's bound parameters), the subquery
        clauses.append(LedgerEntry.grant_id.in_(
            grant_ids if len(grant_ids) <= GRANTS_LISTED else found))
    if text.isdigit() and len(text) < 10:
        clauses.append(LedgerEntry.id == int(text))
    return or_(*clauses)


Before = tuple[dt.datetime, int]  # the (at, number) of the last entry read


def _ledger_lines(uow: UnitOfWork, filters: list[ColumnElement[bool]], *, limit: int,
                  offset: int = 0, before: Before | None = None) -> list[LedgerLine]:
    """The entries, newest first (date, then number): their ids first (an index scan), then
    their rows."""
    keyset = ([tuple_(LedgerEntry.at, LedgerEntry.id)
               < tuple_(literal(before[0], UTCDateTime), literal(before[1]))]
              if before is not None else [])
    ids = (select(LedgerEntry.id).where(*filters, *keyset)
           .order_by(LedgerEntry.at.desc(), LedgerEntry.id.desc())
           .limit(limit).offset(offset).scalar_subquery())
    rows = uow.session.execute(
        select(LedgerEntry, Application.reference, Application.title)
        .outerjoin(Grant, Grant.id == LedgerEntry.grant_id)
        .outerjoin(Application, Application.id == Grant.application_id)
        .where(LedgerEntry.id.in_(ids))
        .order_by(LedgerEntry.at.desc(), LedgerEntry.id.desc())).all()
    return [_line(entry, reference, title) for entry, reference, title in rows]


def _line(entry: LedgerEntry, reference: str | None, title: str | None) -> LedgerLine:
    key = entry.idempotency_key
    return LedgerLine(
        number=entry.id, at=entry.at.isoformat(), kind=entry.kind.value,
        kind_label=entry_kind_label(entry.kind.value), reference=reference, title=title,
        amount=as_str(entry.amount), committed=as_str(entry.committed_after),
        disbursed=as_str(entry.disbursed_after),
        available=as_str(entry.envelope_after - entry.committed_after - entry.disbursed_after),
        payment_reference=key.removeprefix(_PAYMENT) if key.startswith(_PAYMENT) else None,
        actor=entry.actor, note=entry.note)


def ledger_page(uow: UnitOfWork, query: LedgerQuery,
                per_page: int = LEDGER_PER_PAGE) -> LedgerPage:
    """One page of the ledger's entries under ``query``, newest first, with their count; a
    page past the last shows the last."""
    filters = _ledger_filters(uow, query)
    total = uow.session.scalar(select(func.count()).select_from(LedgerEntry)
                               .where(*filters)) or 0
    pages = max(1, -(-total // per_page))
    page = min(query.page, pages)
    rows = _ledger_lines(uow, filters, limit=per_page, offset=(page - 1) * per_page)
    regions = uow.session.scalars(
        select(Balance.key).where(Balance.dimension == "region")).all()
    return LedgerPage(total=total, page=page, pages=pages, per_page=per_page, rows=rows,
                      regions=sorted(regions, key=sort_key))


def ledger_batch(uow: UnitOfWork, query: LedgerQuery, *, before: Before | None,
                 size: int = 2000) -> list[LedgerLine]:
    """Up to ``size`` entries under ``query`` that come after ``before`` (from the newest when
    None) in the page's order: the CSV download reads the ledger batch by batch (keyset, one
    unit of work each), never whole in memory."""
    return _ledger_lines(uow, _ledger_filters(uow, query), limit=size, before=before)


LEDGER_CSV_HEADER = ("numero", "date", "nature", "dossier", "titre", "montant",
                     "engage_apres", "verse_apres", "disponible_apres", "reference_paiement",
                     "auteur", "libelle")


def _cell(text: str | None) -> str:
    """User text in a cell; one a spreadsheet would read as a formula is quoted first."""
    text = text or ""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def ledger_csv_row(line: LedgerLine) -> list[str]:
    """A line of the CSV download: amounts as in the JSON (``120000.00``), times in UTC."""
    return [str(line["number"]), line["at"], line["kind_label"], _cell(line["reference"]),
            _cell(line["title"]), line["amount"], line["committed"], line["disbursed"],
            line["available"], _cell(line["payment_reference"]), _cell(line["actor"]),
            _cell(line["note"])]
