"""The transactional outbox (docs/architecture.md; README « Emails »): one row per email,
written in the same transaction as the change that causes it, sent later by a dispatcher."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Enum, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime


class MessageStatus(StrEnum):
    pending = "pending"    # waiting to be sent (first try, a retry after backoff, a server down)
    sending = "sending"    # being sent by a dispatcher: at most one message per dispatcher
    sent = "sent"          # the server accepted it
    failed = "failed"      # given up: error recorded, visible in `odd17 outbox list`


class OutboxMessage(Base):
    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event: Mapped[str] = mapped_column(String(40))
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    recipient: Mapped[str] = mapped_column(String(320))
    reference: Mapped[str | None] = mapped_column(String(30), index=True)
    context: Mapped[dict[str, Any]] = mapped_column(JSON)  # the facts at the time of the event
    status: Mapped[MessageStatus] = mapped_column(Enum(
        MessageStatus, name="status", native_enum=False, create_constraint=True, length=10,
        values_callable=lambda e: [m.value for m in e]))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    subject: Mapped[str | None] = mapped_column(String(300))
    last_error: Mapped[str | None] = mapped_column(Text)
    # when the dispatcher committed to sending it (a message `sending` since then is the one
    # that may or may not have reached the server), and the Message-ID it went out with
    send_started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    message_id: Mapped[str | None] = mapped_column(String(255))
    # a person's `outbox retry`: the queue lifetime (ODD17_MAIL_EXPIRY_DAYS) starts again
    requeued_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
