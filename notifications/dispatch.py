"""The dispatcher: claim due messages, send them over one connection, record the outcome.

- Claiming is safe with several dispatchers: a message moves ``pending -> sending`` under
  ``SELECT … FOR UPDATE SKIP LOCKED`` (PostgreSQL) or ``BEGIN IMMEDIATE`` (SQLite), with the
  dispatcher's name, so no two dispatchers ever hold the same message.
- A failure counts an attempt and sets the next one after an exponential backoff; after
  ``max_attempts`` the message is ``failed`` with its last error. A server that cannot be
  reached fails the whole batch this way: the messages wait, nothing is lost.
- At most one send per idempotency key: a message left ``sending`` by a dispatcher that died
  (we cannot know whether the server took it) is not sent again automatically; once its claim
  is older than the lease it is marked ``failed`` with that explanation, for a person to check
  and requeue (``odd17 outbox retry``)."""

from __future__ import annotations

import datetime as dt
import smtplib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, bindparam, select, update

from models import DomainError, MessageStatus, OutboxMessage
from notifications.render import build_message, render
from notifications.transports import Transport
from odd17.db import unit_of_work

LEASE = dt.timedelta(minutes=15)


@dataclass(slots=True)
class Claimed:
    id: int
    event: str
    key: str
    recipient: str
    context: dict[str, Any]
    attempts: int


@dataclass(slots=True)
class Report:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def expire_stale(engine: Engine, now: dt.datetime) -> int:
    with unit_of_work(engine) as s:
        result = s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.status == MessageStatus.sending,
                   OutboxMessage.claimed_at < now - LEASE)
            .values(status=MessageStatus.failed,
                    last_error="envoi interrompu (dispatcher arrêté pendant l'envoi) : le "
                               "serveur a pu recevoir le message ; vérifier avant de le renvoyer")
        )
        return result.rowcount or 0


def claim(engine: Engine, worker: str, limit: int, now: dt.datetime) -> list[Claimed]:
    with unit_of_work(engine) as s:
        query = (select(OutboxMessage)
                 .where(OutboxMessage.status == MessageStatus.pending,
                        OutboxMessage.next_attempt_at <= now)
                 .order_by(OutboxMessage.id).limit(limit))
        if s.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = s.scalars(query).all()
        for row in rows:
            row.status, row.claimed_by, row.claimed_at = MessageStatus.sending, worker, now
        return [Claimed(r.id, r.event, r.idempotency_key, r.recipient, r.context, r.attempts)
                for r in rows]


def _finish(engine: Engine, worker: str, outcomes: dict[int, tuple[bool, str, bool]],
            claimed: list[Claimed], *, now: dt.datetime, max_attempts: int,
            backoff: dt.timedelta, report: Report) -> None:
    """Record a batch's outcomes: one executemany UPDATE per kind, each guarded by the claim
    (this dispatcher's name and the ``sending`` status)."""
    by_id = {c.id: c for c in claimed}
    sent, retried, failed = [], [], []
    for message_id, (ok, detail, permanent) in outcomes.items():
        attempts = by_id[message_id].attempts + 1
        if ok:
            sent.append({"b_id": message_id, "b_subject": detail[:300], "b_attempts": attempts})
            continue
        report.errors.append(f"message {message_id} : {detail}")
        row = {"b_id": message_id, "b_error": detail, "b_attempts": attempts}
        if permanent or attempts >= max_attempts:
            failed.append(row)
        else:
            retried.append({**row, "b_next": now + backoff * 2 ** (attempts - 1)})
    table = OutboxMessage.__table__
    mine = update(table).where(table.c.id == bindparam("b_id"),
                               table.c.claimed_by == worker,
                               table.c.status == MessageStatus.sending)
    with unit_of_work(engine) as s:
        if sent:
            s.execute(mine.values(status=MessageStatus.sent, sent_at=now, last_error=None,
                                  subject=bindparam("b_subject"),
                                  attempts=bindparam("b_attempts")), sent)
        if retried:
            s.execute(mine.values(status=MessageStatus.pending, last_error=bindparam("b_error"),
                                  attempts=bindparam("b_attempts"),
                                  next_attempt_at=bindparam("b_next")), retried)
        if failed:
            s.execute(mine.values(status=MessageStatus.failed, last_error=bindparam("b_error"),
                                  attempts=bindparam("b_attempts")), failed)
    report.sent += len(sent)
    report.retried += len(retried)
    report.failed += len(failed)


def dispatch(
    engine: Engine, transport: Callable[[], Transport], *, sender: str, fund_name: str,
    worker: str, clock: Callable[[], dt.datetime], max_attempts: int = 8,
    backoff: dt.timedelta = dt.timedelta(seconds=30), batch: int = 200,
    templates: Path | None = None,
) -> Report:
    """Send every due message, batch after batch, until none is due or the transport fails."""
    report = Report()
    expire_stale(engine, clock())
    while True:
        now = clock()
        claimed = claim(engine, worker, batch, now)
        if not claimed:
            return report
        outcomes: dict[int, tuple[bool, str, bool]] = {}
        try:
            with transport() as connection:
                for message in claimed:
                    try:
                        rendered = render(message.event, message.context, fund_name=fund_name,
                                          override=templates)
                    except DomainError as exc:  # a broken template will not mend by waiting
                        outcomes[message.id] = (False, str(exc), True)
                        continue
                    email = build_message(rendered, sender=sender, recipient=message.recipient,
                                          key=message.key, now=now)
                    try:
                        connection.send(email, f"{message.id:07d}-{message.event}")
                    except smtplib.SMTPRecipientsRefused as exc:
                        outcomes[message.id] = (False, f"destinataire refusé : {exc}", True)
                        continue
                    outcomes[message.id] = (True, rendered.subject, False)
        except (OSError, smtplib.SMTPException) as exc:
            reason = f"envoi impossible : {exc.__class__.__name__} {exc}".strip()
            for message in claimed:
                outcomes.setdefault(message.id, (False, reason, False))
        _finish(engine, worker, outcomes, claimed, now=now, max_attempts=max_attempts,
                backoff=backoff, report=report)
        if not any(ok for ok, _, _ in outcomes.values()):
            return report  # the transport is down: the messages wait for their next attempt


def retry(engine: Engine, ids: list[int] | None, now: dt.datetime) -> int:
    """Requeue failed messages (all, or the given ids) for an immediate attempt."""
    with unit_of_work(engine) as s:
        query = update(OutboxMessage).where(OutboxMessage.status == MessageStatus.failed)
        if ids:
            query = query.where(OutboxMessage.id.in_(ids))
        result = s.execute(query.values(status=MessageStatus.pending, next_attempt_at=now,
                                        attempts=0, claimed_by=None))
        return result.rowcount or 0
