"""The ledger's balance rows (docs/architecture.md, "Locks"): the fund's total row every ledger
write moves by conditional UPDATE, the objective and region rows, the day's history row, and
the entry that records each move with the balances after it. Money movements themselves are in
``ledger.py``; nothing here decides whether a movement is allowed.

Lock order, the same for every operation so that two never wait on each other: first the
objective and region rows (in (dimension, key) order), then the total row; the total row is
taken last and held only for its conditional UPDATE, the entry, the day row and the commit."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, literal, select, update
from sqlalchemy.orm import Session

from models import Balance, EntryKind, Fund, Grant, LedgerDay, LedgerEntry, NotFound
from models.base import Money
from models.dialect import dialect_insert, is_postgresql
from models.ledger import TOTAL, ZERO
from notifications import payloads
from notifications.outbox import enqueue, message
from odd17.uow import UnitOfWork

if TYPE_CHECKING:
    from models.dialect import DialectInsert

__all__ = ["ZERO", "Moved", "bump_dimensions", "cents", "fund_id", "lock_total", "move",
           "record_entry"]


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


def move(
    uow: UnitOfWork, fund: int, *, envelope: Decimal = ZERO, committed: Decimal = ZERO,
    disbursed: Decimal = ZERO, grants: int = 0, need_available: Decimal | None = None,
    need_committed: Decimal | None = None,
) -> Moved | None:
    """The conditional UPDATE of the total row (it takes the row's lock if not held yet);
    ``None`` when its condition does not hold."""
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
    row = uow.session.execute(stmt).first()
    if row is None:
        return None
    moved = Moved(row.envelope, row.committed, row.disbursed)
    below = moved.available < moved.envelope * uow.context.alert_threshold
    if below != row.alert:  # crossing: raised once when going under, reset when back above
        uow.session.execute(update(Balance.__table__)
                            .where(b.fund_id == fund, b.dimension == TOTAL).values(alert=below))
        moved.alert_raised = below
    return moved


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


def bump_dimensions(session: Session, fund: int, deltas: Iterable[tuple[Grant, Decimal,
                                                                         Decimal, int]]) -> None:
    """Add (committed, disbursed, grants) deltas to the grants' objective and region rows, in
    (dimension, key) order: the lock order that keeps two writers from waiting on each other.
    The rows are created first (with zeros), then updated: an upsert carrying negative deltas
    would trip the non-negative CHECK on its proposed row before the conflict is resolved."""
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
