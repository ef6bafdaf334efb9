"""Payment batches (a bank statement export): CSV with a header, or JSON Lines, each record
``{reference, tranche, payment_reference, date, amount?}``. Each payment is recorded in its own
transaction: a refused one never undoes the others, and re-importing a file records nothing
twice (payment references are idempotency keys)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import Engine

from models import DomainError
from odd17.db import unit_of_work
from odd17.services import ledger, sources
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


@dataclass(slots=True)
class PaymentTally:
    recorded: int = 0
    already: int = 0
    refused: list[dict[str, str]] = field(default_factory=list)
    alert_raised: bool = False


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


def record(engine: Engine, orders: list[tuple[str, PaymentOrder | str]], *, actor: str,
           now: dt.datetime, alert_threshold: Decimal) -> PaymentTally:
    tally = PaymentTally()
    for source, order in orders:
        if isinstance(order, str):
            tally.refused.append({"source": source, "error": order})
            continue
        try:
            with unit_of_work(engine) as session:
                result = ledger.pay(session, order.reference, order.tranche,
                                    order.payment_reference, paid_on=order.date, actor=actor,
                                    now=now, alert_threshold=alert_threshold,
                                    amount=order.amount)
        except DomainError as exc:
            tally.refused.append({"source": source, "error": str(exc)})
            continue
        if result.recorded:
            tally.recorded += 1
            tally.alert_raised |= bool(result.moved and result.moved.alert_raised)
        else:
            tally.already += 1
    return tally
