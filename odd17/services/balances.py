"""The ledger's balance rows (docs/architecture.md, "Locks"): the fund's total row every ledger
write moves by conditional UPDATE, the objective and region rows, the day's history row, and
the entry that records each move with the balances after it. Money movements themselves are in
``ledger.py``; nothing here decides whether a movement is allowed.

Lock order, the same for every operation so that two never wait on each other: the total row
first, then the objective and region rows, which are thus only ever locked under the total
row's lock. Every read and check of a movement comes before it: the total row is held for its
conditional UPDATE, the entry, the day's row, the dimension rows and the commit (PostgreSQL,
an approval: one statement and the commit, :func:`move_and_record`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Boolean,
    ColumnClause,
    Integer,
    bindparam,
    column,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import TextClause

from models import Balance, EntryKind, Fund, Grant, LedgerDay, LedgerEntry, NotFound
from models.application import MOVE_CTES
from models.base import Money, UTCDateTime
from models.dialect import dialect_insert, is_postgresql
from models.ledger import TOTAL, ZERO, NewGrant
from notifications import payloads
from notifications.outbox import enqueue, message
from odd17.uow import UnitOfWork
from rules.money import to_cents

if TYPE_CHECKING:
    from models.dialect import DialectInsert

__all__ = ["ZERO", "Moved", "bump_dimensions", "cents", "fund_id", "lock_total", "move",
           "move_and_record", "record_entry"]


@dataclass(slots=True)
class Moved:
    """Balances after a ledger write, and whether the envelope alert was just raised."""

    envelope: Decimal
    committed: Decimal
    disbursed: Decimal
    alert_raised: bool = False

    @property
    def available(self) -> Decimal:
        return self.envelope - self.committed - self.disbursed


def fund_id(session: Session) -> int:
    found = session.scalar(select(Fund.id).order_by(Fund.id).limit(1))
    if found is None:
        raise NotFound("aucun fonds configuré : lancez « odd17 init »")
    return found


def lock_total(session: Session, fund: int) -> Balance:
    """The fund's total row, locked until the transaction ends (SQLite: BEGIN IMMEDIATE
    already serialises writers)."""
    query = select(Balance).where(Balance.fund_id == fund, Balance.dimension == TOTAL)
    if is_postgresql(session):
        query = query.with_for_update()
    total = session.scalars(query.execution_options(populate_existing=True)).first()
    if total is None:
        raise NotFound("l'enveloppe n'est pas ouverte : lancez « odd17 init »")
    return total


def cents(amount: Decimal) -> Any:
    """An amount bound explicitly as Money (integer cents). Arithmetic on Money columns loses
    the column type, and a bare Decimal would then be compared, in euros, with cents."""
    return literal(amount, Money())


def upsert(session: Session) -> Callable[[Any], DialectInsert]:
    return partial(dialect_insert, session)


def _move_statement(fund: int, *, envelope: Decimal, committed: Decimal, disbursed: Decimal,
                    grants: int, need_available: Decimal | None,
                    need_committed: Decimal | None) -> Any:
    """The conditional UPDATE of the total row, returning the balances after it and the alert
    flag as it was."""
    b = Balance.__table__.c
    stmt = (
        update(Balance.__table__)
        .where(b.fund_id == fund, b.dimension == TOTAL)
        .values(envelope=b.envelope + cents(envelope), committed=b.committed + cents(committed),
                disbursed=b.disbursed + cents(disbursed), grants=b.grants + grants)
        .returning(b.envelope, b.committed, b.disbursed, b.alert)
    )
    if need_available is not None:
        stmt = stmt.where(b.envelope - b.committed - b.disbursed >= cents(need_available))
    if need_committed is not None:
        stmt = stmt.where(b.committed >= cents(need_committed))
    return stmt


def move(
    uow: UnitOfWork, fund: int, *, envelope: Decimal = ZERO, committed: Decimal = ZERO,
    disbursed: Decimal = ZERO, grants: int = 0, need_available: Decimal | None = None,
    need_committed: Decimal | None = None,
) -> Moved | None:
    """The conditional UPDATE of the total row (it takes the row's lock if not held yet);
    ``None`` when its condition does not hold."""
    row = uow.session.execute(_move_statement(
        fund, envelope=envelope, committed=committed, disbursed=disbursed, grants=grants,
        need_available=need_available, need_committed=need_committed)).first()
    if row is None:
        return None
    return _crossed(uow, fund, Moved(row.envelope, row.committed, row.disbursed), row.alert)


def _crossed(uow: UnitOfWork, fund: int, moved: Moved, was_raised: bool) -> Moved:
    """Raise the envelope alert once when going under the threshold, reset it when back
    above (one more UPDATE, only on a crossing)."""
    below = moved.available < moved.envelope * uow.context.alert_threshold
    if below != was_raised:
        b = Balance.__table__.c
        uow.session.execute(update(Balance.__table__)
                            .where(b.fund_id == fund, b.dimension == TOTAL).values(alert=below))
        moved.alert_raised = below
    return moved


def move_and_record(
    uow: UnitOfWork, fund: int | None, kind: EntryKind, amount: Decimal, key: str, *, note: str,
    envelope: Decimal = ZERO, committed: Decimal = ZERO, disbursed: Decimal = ZERO,
    grants: int = 0, need_available: Decimal | None = None,
    need_committed: Decimal | None = None, grant_id: int | None = None,
    tranche_id: int | None = None, corrects: int | None = None,
    grant: NewGrant | None = None,
) -> tuple[Moved, int] | None:
    """:func:`move` then :func:`record_entry`: the balances after the move and the entry's id,
    or ``None`` (nothing written) when the move's condition does not hold.

    ``grant`` (an approval: non-negative deltas): its objective and region rows get the same
    deltas as the total row, after it (:func:`bump_dimensions`).

    On PostgreSQL these writes are one statement (data-modifying CTEs: the UPDATE, then the
    entry, the day's row and the dimension rows, each reading its RETURNING), so the total
    row's lock, which that statement takes, is held for one round trip and the commit;
    SQLite's BEGIN IMMEDIATE has serialised the writers from the start, the statements follow
    each other there.

    ``fund`` None: the fund :func:`fund_id` finds, looked up by that statement on PostgreSQL
    (one round trip less for an approval)."""
    if not is_postgresql(uow.session):
        if fund is None:
            fund = fund_id(uow.session)
        moved = move(uow, fund, envelope=envelope, committed=committed, disbursed=disbursed,
                     grants=grants, need_available=need_available,
                     need_committed=need_committed)
        if moved is None:
            return None
        if grant is not None:
            bump_dimensions(uow.session, fund, [(grant, committed, disbursed, grants)])
        return moved, record_entry(uow, fund, kind, amount, key, moved, note=note,
                                   grant_id=grant_id, tranche_id=tranche_id, corrects=corrects)
    dimensions = {} if grant is None else {"objective": grant.objective, "region": grant.region}
    row = uow.session.execute(RECORDED_APPROVAL if grant else RECORDED_MOVE, dimensions | {
        "fund_id": fund, "envelope": envelope, "committed": committed, "disbursed": disbursed,
        "grants": grants, "need_available": need_available, "need_committed": need_committed,
        "kind": kind.value, "amount": amount, "key": key, "at": uow.now, "actor": uow.actor,
        "note": note, "grant_id": grant_id, "tranche_id": tranche_id, "corrects_id": corrects,
        "day": uow.now.date()}).first()
    if row is None:
        return None
    moved = _crossed(uow, row.fund_id, Moved(row.envelope, row.committed, row.disbursed),
                     row.alert)
    if moved.alert_raised:
        alert(uow, moved, key)
    return moved, row.entry_id


# The total row's conditional UPDATE, the entry carrying its RETURNING and the day's row, as
# one PostgreSQL statement (data-modifying CTEs). Written once as text: SQLAlchemy neither
# caches an INSERT … ON CONFLICT nor builds this in less than ~2 ms of CPU a call, most of an
# approval's time on a loaded machine. The WHERE reads the row before the SET, as in move().
_MOVED_CTES = """moved AS (
    UPDATE balances SET envelope = envelope + :envelope, committed = committed + :committed,
        disbursed = disbursed + :disbursed, grants = grants + :grants
    WHERE fund_id = COALESCE(CAST(:fund_id AS integer), (SELECT min(id) FROM funds))
      AND dimension = 'total'
      AND (CAST(:need_available AS bigint) IS NULL
           OR envelope - committed - disbursed >= :need_available)
      AND (CAST(:need_committed AS bigint) IS NULL OR committed >= :need_committed){guard}
    RETURNING fund_id, envelope, committed, disbursed, alert
), entry AS (
    INSERT INTO ledger_entries (fund_id, kind, amount, idempotency_key, at, actor, note,
        grant_id, tranche_id, corrects_id, envelope_after, committed_after, disbursed_after)
    SELECT fund_id, CAST(:kind AS varchar), :amount, CAST(:key AS varchar),
        CAST(:at AS timestamptz), CAST(:actor AS varchar), CAST(:note AS text),
        {grant_id}, CAST(:tranche_id AS integer),
        CAST(:corrects_id AS integer), envelope, committed, disbursed
    FROM moved
    RETURNING id
), day AS (
    INSERT INTO ledger_days (fund_id, day, envelope, committed, disbursed)
    SELECT fund_id, CAST(:day AS date), envelope, committed, disbursed FROM moved
    ON CONFLICT (fund_id, day) DO UPDATE SET envelope = excluded.envelope,
        committed = excluded.committed, disbursed = excluded.disbursed
)"""
_MOVED = "\nWITH " + _MOVED_CTES.format(guard="", grant_id="CAST(:grant_id AS integer)")
# An approval's objective and region rows, created or moved by the same (non-negative)
# deltas; reading ``moved``, they are locked after the total row, and not at all when the
# envelope refuses the approval.
_DIMENSIONS = """, dimensions AS (
    INSERT INTO balances AS b (fund_id, dimension, "key", envelope, committed, disbursed,
        grants, alert)
    SELECT moved.fund_id, d.dimension, d.key, 0, :committed, :disbursed, :grants, FALSE
    FROM moved, (VALUES ('objective', CAST(:objective AS varchar)),
                        ('region', CAST(:region AS varchar))) AS d (dimension, key)
    ON CONFLICT (fund_id, dimension, "key") DO UPDATE SET
        committed = b.committed + excluded.committed,
        disbursed = b.disbursed + excluded.disbursed, grants = b.grants + excluded.grants
)"""
_RESULT = """
SELECT moved.fund_id, moved.envelope, moved.committed, moved.disbursed, moved.alert,
    entry.id AS entry_id
FROM moved, entry"""


def _recorded(sql: str, money: tuple[str, ...] = (), integers: tuple[str, ...] = (),
              leading: tuple[ColumnClause[Any], ...] = ()) -> Any:
    """``sql`` with its parameters' types and its result's columns: ``leading`` then those of
    ``_RESULT``, in the SELECT's order. Given in order (not by name), SQLAlchemy caches how it
    reads the result instead of matching its columns by name at every call."""
    return text(sql).bindparams(
        *(bindparam(name, type_=Money()) for name in (
            "envelope", "committed", "disbursed", "need_available", "need_committed", "amount",
            *money)),
        *(bindparam(name, type_=Integer()) for name in ("fund_id", "grants", *integers)),
        bindparam("at", type_=UTCDateTime()),
    ).columns(*leading, column("fund_id", Integer()), column("envelope", Money()),
              column("committed", Money()), column("disbursed", Money()),
              column("alert", Boolean()), column("entry_id", Integer()))


RECORDED_MOVE = _recorded(_MOVED + _RESULT)
RECORDED_APPROVAL = _recorded(_MOVED + _DIMENSIONS + _RESULT)


@lru_cache
def _approval(tranches: int) -> Any:
    """PostgreSQL: a whole approval as one statement. The application's compare-and-set move
    and history row (``MOVE_CTES``), the grant and its ``tranches`` tranches (only if the
    application moved), then RECORDED_APPROVAL's writes (only if the grant was written). The
    total row's lock is taken there, after the application's, as in the other order of
    statements; ``grant_id`` NULL: the application had moved; ``entry_id`` NULL: the envelope
    refused (the caller rolls back)."""
    values = ", ".join(f"(CAST(:number{i} AS integer), CAST(:label{i} AS varchar), "
                       f":tranche_amount{i}, CAST(:due_on{i} AS date))" for i in range(tranches))
    # the guard reads the grant, its tranches and the history row: PostgreSQL writes them
    # before it takes the total row's lock (a CTE nothing reads runs after the query)
    moved = _MOVED_CTES.format(
        guard="\n      AND EXISTS (SELECT 1 FROM new_grant)"
              "\n      AND EXISTS (SELECT 1 FROM new_tranches)"
              "\n      AND EXISTS (SELECT 1 FROM application_history)",
        grant_id="(SELECT id FROM new_grant)")
    sql = f"""
WITH {MOVE_CTES}, new_grant AS (
    INSERT INTO grants (application_id, awarded, disbursed, released, objective, region,
        approved_at)
    SELECT id, :grant_awarded, :grant_disbursed, :grant_released, CAST(:objective AS varchar),
        CAST(:region AS varchar), :at
    FROM moved_application
    RETURNING id
), new_tranches AS (
    INSERT INTO tranches (grant_id, number, label, amount, due_on)
    SELECT new_grant.id, v.number, v.label, v.amount, v.due_on
    FROM new_grant, (VALUES {values}) AS v (number, label, amount, due_on)
    RETURNING id
), {moved}{_DIMENSIONS}
SELECT (SELECT id FROM new_grant) AS grant_id, moved.fund_id, moved.envelope, moved.committed,
    moved.disbursed, moved.alert, entry.id AS entry_id
FROM (VALUES (1)) AS one (x) LEFT JOIN moved ON true LEFT JOIN entry ON true"""
    money = ("grant_awarded", "grant_disbursed", "grant_released",
             *(f"tranche_amount{i}" for i in range(tranches)))
    return _recorded(sql, money, ("application_id",), (column("grant_id", Integer()),))


def record_approval(uow: UnitOfWork, move: dict[str, Any], grant: NewGrant, amount: Decimal,
                    key: str, *, note: str) -> tuple[int | None, tuple[Moved, int] | None]:
    """PostgreSQL: an approval in one statement (:func:`_approval`): ``move`` from
    ``Application.staged_move``, ``grant`` with its tranches, not written yet. Returns the
    grant's id (``None``: the application had moved meanwhile, nothing was written) and, as
    :func:`move_and_record`, the balances and the entry's id (``None``: the envelope refused;
    the application's move and the grant are written, for the caller to roll back)."""
    params: dict[str, Any] = {
        **move, "grant_awarded": grant.awarded, "grant_disbursed": grant.disbursed,
        "grant_released": grant.released, "objective": grant.objective, "region": grant.region,
        "fund_id": None, "envelope": ZERO, "committed": amount, "disbursed": ZERO, "grants": 1,
        "need_available": amount, "need_committed": None, "kind": EntryKind.commit.value,
        "amount": amount, "key": key, "at": uow.now, "actor": uow.actor, "note": note,
        "tranche_id": None, "corrects_id": None, "day": uow.now.date()}
    if not grant.tranches:  # split() gives one at least; none would read as a refusal
        raise ValueError("record_approval: a grant without tranches")
    for i, (number, label, tranche_amount, due_on) in enumerate(grant.tranches):
        params.update({f"number{i}": number, f"label{i}": label,
                       f"tranche_amount{i}": tranche_amount, f"due_on{i}": due_on})
    row = uow.session.execute(_approval(len(grant.tranches)), params).one()
    if row.grant_id is None or row.entry_id is None:
        return row.grant_id, None
    moved = _crossed(uow, row.fund_id, Moved(row.envelope, row.committed, row.disbursed),
                     row.alert)
    if moved.alert_raised:
        alert(uow, moved, key)
    return row.grant_id, (moved, row.entry_id)


def entry_row(uow: UnitOfWork, fund: int, kind: EntryKind, amount: Decimal, key: str,
              moved: Moved, *, note: str, grant_id: int | None = None,
              tranche_id: int | None = None, corrects: int | None = None) -> dict[str, Any]:
    """The values of a ledger entry carrying the balances after it."""
    return {"fund_id": fund, "kind": kind, "amount": amount, "idempotency_key": key,
            "at": uow.now, "actor": uow.actor, "note": note, "grant_id": grant_id,
            "tranche_id": tranche_id, "envelope_after": moved.envelope,
            "committed_after": moved.committed, "disbursed_after": moved.disbursed,
            "corrects_id": corrects}


def record_entry(uow: UnitOfWork, fund: int, kind: EntryKind, amount: Decimal, key: str,
                 moved: Moved, *, note: str, grant_id: int | None = None,
                 tranche_id: int | None = None, corrects: int | None = None) -> int:
    """Append the entry (Core INSERT: no ORM flush under the lock), then the day's row and,
    when the move crossed the alert threshold, the finance alert. Returns the entry's id."""
    row = entry_row(uow, fund, kind, amount, key, moved, note=note, grant_id=grant_id,
                    tranche_id=tranche_id, corrects=corrects)
    entry_id: int = uow.session.execute(
        insert(LedgerEntry.__table__).values(row).returning(LedgerEntry.__table__.c.id)
    ).scalar_one()
    close_day(uow, fund, moved)
    if moved.alert_raised:
        alert(uow, moved, key)
    return entry_id


def close_day(uow: UnitOfWork, fund: int, moved: Moved) -> None:
    """The day's history row holds the balances after the day's last entry."""
    day = upsert(uow.session)(LedgerDay.__table__).values(
        fund_id=fund, day=uow.now.date(), envelope=moved.envelope, committed=moved.committed,
        disbursed=moved.disbursed)
    uow.session.execute(day.on_conflict_do_update(
        index_elements=["fund_id", "day"],
        set_={"envelope": day.excluded.envelope, "committed": day.excluded.committed,
              "disbursed": day.excluded.disbursed},
    ))


def alert(uow: UnitOfWork, moved: Moved, key: str) -> None:
    """The envelope alert to the finance address (the unit of work's context)."""
    context = uow.context
    enqueue(uow.session, [message(payloads.EnvelopeAlert.from_balances(
        envelope=moved.envelope, committed=moved.committed, disbursed=moved.disbursed,
        threshold=context.alert_threshold, at=uow.now),
        context.finance_email, key=f"envelope_alert:{key}", now=uow.now)])


def bump_dimensions(session: Session, fund: int,
                    deltas: Iterable[tuple[Grant | NewGrant, Decimal, Decimal, int]]) -> None:
    """Add (committed, disbursed, grants) deltas to the grants' objective and region rows, in
    (dimension, key) order; called once the total row is locked (the lock order), so two
    writers never wait on each other for them. Deltas all non-negative: one upsert.
    Otherwise the rows are created first (with zeros), then updated: an upsert carrying
    negative deltas would trip the non-negative CHECK on its proposed row before the conflict
    is resolved."""
    summed: dict[tuple[str, str], list[Any]] = {}
    for grant, committed, disbursed, grants in deltas:
        for row_key in (("objective", grant.objective), ("region", grant.region)):
            row = summed.setdefault(row_key, [ZERO, ZERO, 0])
            row[0] += committed
            row[1] += disbursed
            row[2] += grants
    if not summed:
        return
    table = Balance.__table__
    if all(c >= 0 and d >= 0 and g >= 0 for c, d, g in summed.values()):  # an approval
        params: dict[str, Any] = {"fund_id": fund}
        for i, ((dimension, key), (c, d, g)) in enumerate(sorted(summed.items())):
            params.update({f"dimension{i}": dimension, f"key{i}": key,
                           f"committed{i}": to_cents(c), f"disbursed{i}": to_cents(d),
                           f"grants{i}": g})
        session.execute(_add_to_dimensions(len(summed)), params)
        return
    session.execute(upsert(session)(table).values([
        {"fund_id": fund, "dimension": dimension, "key": key, "envelope": ZERO,
         "committed": ZERO, "disbursed": ZERO, "grants": 0, "alert": False}
        for dimension, key in sorted(summed)
    ]).on_conflict_do_nothing())
    for (dimension, key), (committed, disbursed, grants) in sorted(summed.items()):
        session.execute(update(table).where(
            table.c.fund_id == fund, table.c.dimension == dimension, table.c.key == key,
        ).values(committed=table.c.committed + cents(committed),
                 disbursed=table.c.disbursed + cents(disbursed), grants=table.c.grants + grants))


@lru_cache
def _add_to_dimensions(rows: int) -> TextClause:
    """One upsert adding non-negative deltas (in cents) to ``rows`` dimension rows, locked in
    the order of its VALUES. Text, for the reason given at RECORDED_MOVE."""
    values = ", ".join(f"(:fund_id, :dimension{i}, :key{i}, 0, :committed{i}, :disbursed{i}, "
                       f":grants{i}, FALSE)" for i in range(rows))
    return text(f"""
INSERT INTO balances (fund_id, dimension, "key", envelope, committed, disbursed, grants, alert)
VALUES {values}
ON CONFLICT (fund_id, dimension, "key") DO UPDATE SET
    committed = balances.committed + excluded.committed,
    disbursed = balances.disbursed + excluded.disbursed,
    grants = balances.grants + excluded.grants""")
