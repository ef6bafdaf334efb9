"""Sending the outbox with the configured transport (the CLI's and the flow's entry point)."""

from __future__ import annotations

import datetime as dt
import os
import socket

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from models import DomainError, MessageStatus, OutboxMessage
from notifications.dispatch import Report, dispatch
from notifications.render import Rendered, render
from notifications.transports import EmlFolder, Smtp, Transport
from odd17.runtime import utcnow
from odd17.settings import Settings, get_fund_config, get_settings


def transport_factory(settings: Settings):  # type: ignore[no-untyped-def]
    def make() -> Transport:
        if settings.mail_transport == "smtp":
            return Smtp(host=settings.smtp_host, port=settings.smtp_port,
                        user=settings.smtp_user, password=settings.smtp_password,
                        starttls=settings.smtp_starttls, ssl=settings.smtp_ssl,
                        sender=settings.mail_from)
        return EmlFolder(settings.mail_dir)
    return make


def send_pending(engine: Engine, *, worker: str | None = None) -> Report:
    settings = get_settings()
    return dispatch(
        engine, transport_factory(settings), sender=settings.mail_from,
        fund_name=get_fund_config().fund.name,
        worker=worker or f"{socket.gethostname()}:{os.getpid()}", clock=utcnow,
        max_attempts=settings.mail_max_attempts,
        backoff=dt.timedelta(seconds=settings.mail_backoff_seconds),
        templates=settings.templates_dir,
        lifetime=dt.timedelta(days=settings.mail_expiry_days),
    )


def list_messages(session: Session, status: MessageStatus | None = None,
                  limit: int = 500) -> list[dict[str, object]]:
    query = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit)
    if status is not None:
        query = query.where(OutboxMessage.status == status)
    return [{"id": m.id, "event": m.event, "recipient": m.recipient, "reference": m.reference,
             "status": m.status.value, "attempts": m.attempts,
             "created_at": m.created_at.isoformat(),
             "sent_at": m.sent_at.isoformat() if m.sent_at else None,
             "next_attempt_at": m.next_attempt_at.isoformat(), "subject": m.subject,
             "last_error": m.last_error, "message_id": m.message_id,
             "send_started_at": m.send_started_at.isoformat() if m.send_started_at else None}
            for m in session.scalars(query)]


def counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(OutboxMessage.status, func.count())
                           .group_by(OutboxMessage.status)).all()
    return {status.value: n for status, n in rows}


def preview(event: str, session: Session | None = None,
            reference: str | None = None) -> Rendered:
    """The e-mail ``event`` rendered: on its fictitious example, or on the context of the
    last message of that event stored for ``reference`` (then ``session`` is needed)."""
    from notifications.events import EXAMPLES

    context = EXAMPLES.get(event, {})
    if reference:
        assert session is not None
        found = session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.event == event,
                   OutboxMessage.reference == reference.strip().upper())
            .order_by(OutboxMessage.id.desc())).first()
        if found is None:
            raise DomainError(f"aucun message « {event} » pour {reference}")
        context = found.context
    return render(event, context, fund_name=get_fund_config().fund.name,
                  override=get_settings().templates_dir)
