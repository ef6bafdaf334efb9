"""Writing to the outbox: always inside the caller's transaction, so that a message exists
if and only if the change that causes it was committed."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from models import MessageStatus, OutboxMessage
from models.dialect import dialect_insert


def message(event: str, recipient: str, context: dict[str, Any], *, key: str,
            now: dt.datetime, reference: str | None = None) -> dict[str, Any]:
    return {"event": event, "idempotency_key": key, "recipient": recipient,
            "reference": reference, "context": context, "status": MessageStatus.pending,
            "attempts": 0, "next_attempt_at": now, "created_at": now}


def enqueue(session: Session, rows: list[dict[str, Any]]) -> None:
    """Add messages (built with ``message``); a key already queued adds nothing."""
    if not rows:
        return
    session.execute(dialect_insert(session, OutboxMessage.__table__).on_conflict_do_nothing(),
                    rows)
