"""Payment batches (a bank statement export): CSV with a header, or JSON Lines, each record
``{reference, tranche, payment_reference, date, amount?}``. A batch of lines is one transaction
under one lock of the fund's total row; each line is judged alone before anything is written,
so a refused one never undoes the others, and re-importing a file records nothing twice
(payment references are idempotency keys)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import insert, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, lazyload, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from models import (
    Application,
    DomainError,
    EntryKind,
    Grant,
    LedgerEntry,
    NotFound,
    Status,
    Tranche,
)
from models.application import move_many
from models.dialect import is_postgresql
from models.ledger import ZERO
from notifications.outbox import enqueue
from odd17.services import ledger, sources
from odd17.services.balances import (
    Moved,
    alert,
    bump_dimensions,
    close_day,
    entry_row,
    fund_id,
    move,
)
from odd17.uow import Runner, UnitOfWork
from rules.document import Money, explain


class PaymentOrder(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    reference: str = Field(min_length=1, max_length=30)
    tranche: int = Field(ge=1, le=99)
    payment_reference: str = Field(min_length=1, max_length=100)
    date: dt.date
    amount: Money | None = None

    @field_validator("amount", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if value == "" else value


BATCH = 1000  # lines per transaction: one lock of the total row each


@dataclass(slots=True)
class PaymentTally:
    recorded: int = 0
    already: int = 0
    refused: list[dict[str, str]] = field(default_factory=list)  # each refused line, why
    alert_raised: bool = False

    def add(self, source: str, outcome: ledger.Result | str) -> None:
        if isinstance(outcome, str):
            self.refused.append({"source": source, "error": outcome})
        elif outcome.recorded:
            self.recorded += 1
            self.alert_raised |= bool(outcome.moved and outcome.moved.alert_raised)
        else:
            self.already += 1


def read_orders(path: Path) -> list[tuple[str, PaymentOrder | str]]:
    """(source, order) per record, or (source, its French error message): each record is
    judged alone (see odd17.services.sources); a file that cannot be read at all is one
    refusal."""
    try:
        data = sources.read_bytes(path)
        read = sources.csv_records(path, data) if path.suffix == ".csv" else \
            sources.json_lines(path, data, controls=True)
    except sources.SourceError as exc:  # the file is refused, the flow's other files go on
        return [(str(path), str(exc))]
    records: list[tuple[str, Any]] = [(r.source, r.error if r.error is not None else r.data)
                                      for r in read]
    orders: list[tuple[str, PaymentOrder | str]] = []
    for source, record in records:
        if isinstance(record, str):
            orders.append((source, record))
            continue
        try:
            orders.append((source, PaymentOrder.model_validate(record)))
        except ValidationError as exc:
            orders.append((source, "; ".join(f"{e['field']} : {e['message']}"
                                             for e in explain(exc))))
    return orders


def record(runner: Runner, orders: list[tuple[str, PaymentOrder | str]], *,
           batch: int = BATCH) -> PaymentTally:
    """Record a bank statement: each batch of ``batch`` lines in one transaction, checked
    line by line before anything is written (a refused line changes nothing, so it never
    undoes the others), then written at once under one lock of the fund's total row. Should
    the database still refuse a batch, its lines are recorded again one transaction each."""
    tally = PaymentTally()
    lines = [(source, order) for source, order in orders]
    for start in range(0, len(lines), batch):
        chunk = lines[start:start + batch]
        try:
            with runner.uow() as uow:
                outcomes = _record_batch(uow, chunk)
        except (DBAPIError, DomainError):  # the database refused the batch: line by line
            outcomes = [_record_alone(runner, source, order) for source, order in chunk]
        for source, outcome in zip((source for source, _ in chunk), outcomes, strict=True):
            tally.add(source, outcome)
    return tally


Outcome = ledger.Result | str  # the result, or the French reason of a refusal


def _record_alone(runner: Runner, source: str, order: PaymentOrder | str) -> Outcome:
    if isinstance(order, str):
        return order
    try:
        with runner.uow() as uow:
            return ledger.pay(uow, order.reference, order.tranche, order.payment_reference,
                              paid_on=order.date, amount=order.amount)
    except DomainError as exc:
        return str(exc)
    except DBAPIError as exc:  # judged alone, the line is still refused by the database
        return (f"{order.reference} : versement {order.payment_reference} refusé par la base "
                f"de données ({type(exc.orig).__name__}) ; rien n'a été enregistré")


@dataclass(slots=True)
class _Batch:
    """What a batch read once, before judging its lines."""

    apps: dict[str, Application]
    grants: dict[int, Grant]                       # by application id
    previous: dict[str, tuple[int, int, Decimal]]  # key -> (application id, tranche, amount)


def _load(session: Session, orders: list[PaymentOrder]) -> _Batch:
    references = {o.reference.strip().upper() for o in orders}
    if is_postgresql(session):  # the batch's grants, in id order
        session.execute(select(Grant.id).join(Application, Application.id == Grant.application_id)
                        .where(Application.reference.in_(references)).order_by(Grant.id)
                        .with_for_update(of=Grant))
    apps = {a.reference: a for a in session.scalars(
        select(Application).where(Application.reference.in_(references))
        .execution_options(populate_existing=True))}
    grants = {g.application_id: g for g in session.scalars(
        select(Grant).where(Grant.application_id.in_([a.id for a in apps.values()]))
        # the applications are loaded just above: no second join of their documents
        .options(selectinload(Grant.tranches), lazyload(Grant.application))
        .execution_options(populate_existing=True))}
    keys = [f"disburse:{o.payment_reference}" for o in orders]
    previous = {key: (app_id, number, amount) for key, app_id, number, amount in session.execute(
        select(LedgerEntry.idempotency_key, Grant.application_id, Tranche.number,
               LedgerEntry.amount)
        .join(Tranche, Tranche.id == LedgerEntry.tranche_id)
        .join(Grant, Grant.id == Tranche.grant_id)
        .where(LedgerEntry.idempotency_key.in_(keys)))}
    return _Batch(apps, grants, previous)


@dataclass(slots=True)
class _Paid:
    grant: Grant
    tranche: Tranche
    amount: Decimal
    key: str
    note: str


def _judge(uow: UnitOfWork, read: _Batch, order: PaymentOrder, paid: list[_Paid],
           messages: list[dict[str, Any]],
           firsts: dict[int, tuple[Application, str]]) -> ledger.Result:
    """One line against the batch's state (earlier lines included): the result, or a
    DomainError raised before anything of this line is changed."""
    payment_reference = order.payment_reference.strip()
    app = read.apps.get(order.reference.strip().upper())
    if app is None:
        raise NotFound(f"aucun dossier de référence « {order.reference} »")
    key = f"disburse:{payment_reference}"
    if key in read.previous:
        app_id, number, amount = read.previous[key]
        if app_id == app.id and number == order.tranche:
            return ledger.Result(app.reference, False, amount,
                                 message=f"paiement {payment_reference} déjà enregistré")
        raise DomainError(f"la référence de paiement « {payment_reference} » est déjà "
                          f"utilisée par un autre versement")
    grant = read.grants.get(app.id)
    if grant is None:
        raise NotFound(f"{app.reference} : aucune subvention attribuée à ce dossier "
                       f"(statut « {app.status} »)")
    ledger.check_payable_grant(uow, app.reference, Status(app.status), grant, order.date)
    tranche, amount = grant.payable(app.reference, order.tranche, order.amount)
    if app.status == Status.approved:  # moved to active with the batch (_activate)
        firsts.setdefault(app.id, (app, payment_reference))
    grant.record_payment(tranche, amount, payment_reference, order.date)
    read.previous[key] = (app.id, order.tranche, amount)
    messages.append(ledger.paid_message(uow, app, grant, tranche, amount, payment_reference,
                                        order.date))
    paid.append(_Paid(grant, tranche, amount, key,
                      ledger.paid_note(app.reference, tranche, order.date)))
    return ledger.Result(app.reference, True, amount)


def _record_batch(uow: UnitOfWork, lines: list[tuple[str, PaymentOrder | str]]) -> list[Outcome]:
    session = uow.session
    fund = fund_id(session)
    read = _load(session, [o for _, o in lines if not isinstance(o, str)])
    paid: list[_Paid] = []
    messages: list[dict[str, Any]] = []
    firsts: dict[int, tuple[Application, str]] = {}
    outcomes: list[Outcome] = []
    for _, order in lines:
        if isinstance(order, str):
            outcomes.append(order)
            continue
        try:
            outcomes.append(_judge(uow, read, order, paid, messages, firsts))
        except DomainError as exc:
            outcomes.append(str(exc))
    if paid:
        _activate(uow, firsts)
        enqueue(session, messages)
        ledger.flush_payments(session, [p.key.removeprefix("disburse:") for p in paid])
        moved = _write(uow, fund, paid)
        for outcome in outcomes:
            if isinstance(outcome, ledger.Result) and outcome.recorded:
                outcome.moved = moved
    return outcomes


def _activate(uow: UnitOfWork, firsts: dict[int, tuple[Application, str]]) -> None:
    """``approved -> active`` for the grants paid for the first time, as one compare-and-set
    over the batch's applications (``Application.transition_to`` one by one would load each
    history), with their history rows. Another process that moved one first makes the batch
    fail, and its lines are then recorded one by one."""
    if not firsts:
        return
    move_many(uow.session, {app_id: f"premier versement ({payment_reference})"
                            for app_id, (_, payment_reference) in firsts.items()},
              Status.approved, Status.active, actor=uow.actor, at=uow.now)
    for app, _ in firsts.values():  # the objects in step, without a second UPDATE at flush
        set_committed_value(app, "status", Status.active)
        set_committed_value(app, "updated_at", uow.now)


def _write(uow: UnitOfWork, fund: int, paid: list[_Paid]) -> Moved:
    """The batch's balance moves: one conditional UPDATE of the total row (its lock, held to
    the commit), then the dimension rows, the entries with the balances after each, the day."""
    session = uow.session
    total = sum((p.amount for p in paid), ZERO)
    moved = move(uow, fund, committed=-total, disbursed=total, need_committed=total)
    if moved is None:  # pragma: no cover - impossible while the per-grant invariant holds
        raise DomainError("engagement insuffisant pour ces versements ; lancez odd17 finance "
                          "--check")
    bump_dimensions(session, fund, [(p.grant, -p.amount, p.amount, 0) for p in paid])
    committed, disbursed = moved.committed + total, moved.disbursed - total
    rows = []
    for p in paid:
        committed, disbursed = committed - p.amount, disbursed + p.amount
        rows.append(entry_row(uow, fund, EntryKind.disburse, p.amount, p.key,
                              Moved(moved.envelope, committed, disbursed), note=p.note,
                              grant_id=p.grant.id, tranche_id=p.tranche.id))
    session.execute(insert(LedgerEntry.__table__), rows)
    close_day(uow, fund, moved)
    if moved.alert_raised:
        alert(uow, moved, paid[-1].key)
    return moved
