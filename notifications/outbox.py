"""Writing to the outbox: always inside the caller's transaction, so that a message exists
if and only if the change that causes it was committed. A message carries a typed payload
(``notifications/payloads.py``), validated when it is built, before the commit."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from models import MessageStatus, OutboxMessage
from models.bulk import insert_many
from models.dialect import dialect_insert, insert_or_ignore
from notifications.payloads import Built, Payload


def message(payload: Payload | Built, recipient: str, *, key: str, now: dt.datetime,
            reference: str | None = None) -> dict[str, Any]:
    """The outbox row of one email: ``key`` is unique per occurrence (a retry adds nothing)."""
    if not isinstance(payload, Payload | Built):  # an untyped dict would reach the templates
        raise TypeError(f"message: a notifications.payloads model expected, not {payload!r}")
    return {"event": payload.event, "idempotency_key": key, "recipient": recipient,
            "reference": reference, "context": payload.context(),
            "status": MessageStatus.pending, "attempts": 0, "next_attempt_at": now,
            "created_at": now}


def enqueue(session: Session, rows: list[dict[str, Any]]) -> None:
    """Add messages (built with ``message``); a key already queued adds nothing."""
    if not rows:
        return
    if len(rows) == 1:  # one email (a decision, a payment, a sign-in): a statement compiled once
        session.execute(insert_or_ignore(OutboxMessage.__table__, tuple(rows[0])), rows[0])
        return
    insert_many(session, dialect_insert(session, OutboxMessage.__table__).on_conflict_do_nothing(),
                rows)
