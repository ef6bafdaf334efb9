"""The outbox use cases: send the due messages, list them, count them, preview an email,
requeue failed ones. The mail settings (transport, sender, attempts, templates) come in as a
:class:`MailSettings` built by the entrypoint; the fund's name and the clock from the
:class:`~odd17.uow.Context`. The dispatching itself is ``notifications/dispatch.py``."""

from __future__ import annotations

import datetime as dt
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from models import DomainError, MessageStatus, OutboxMessage
from notifications.dispatch import Report, dispatch, requeue
from notifications.render import Rendered, render
from notifications.transports import EmlFolder, Smtp, Transport
from odd17.settings import Settings
from odd17.uow import Context, Runner, UnitOfWork


@dataclass(frozen=True)
class MailSettings:
    """How messages leave: the transport (a factory: one connection per run) and the
    dispatcher's policy."""

    transport: Callable[[], Transport]
    sender: str
    max_attempts: int = 8
    backoff: dt.timedelta = dt.timedelta(seconds=30)
    lifetime: dt.timedelta = dt.timedelta(days=5)
    templates: Path | None = None
    portal_url: str | None = None  # ODD17_PUBLIC_URL: the emails link to the portal's pages

    @classmethod
    def from_settings(cls, settings: Settings) -> MailSettings:
        return cls(transport=transport_factory(settings), sender=settings.mail_from,
                   max_attempts=settings.mail_max_attempts,
                   backoff=dt.timedelta(seconds=settings.mail_backoff_seconds),
                   lifetime=dt.timedelta(days=settings.mail_expiry_days),
                   templates=settings.templates_dir,
                   portal_url=settings.public_url.rstrip("/"))


def transport_factory(settings: Settings) -> Callable[[], Transport]:
    def make() -> Transport:
        if settings.mail_transport == "smtp":
            return Smtp(host=settings.smtp_host, port=settings.smtp_port,
                        user=settings.smtp_user, password=settings.smtp_password,
                        starttls=settings.smtp_starttls, ssl=settings.smtp_ssl,
                        sender=settings.mail_from)
        return EmlFolder(settings.mail_dir)
    return make


def send(runner: Runner, mail: MailSettings, *, worker: str | None = None) -> Report:
    """Send every message due now (each claim and outcome its own transaction)."""
    return dispatch(
        runner.engine, mail.transport, sender=mail.sender,
        fund_name=runner.context.config.fund.name,
        worker=worker or f"{socket.gethostname()}:{os.getpid()}", clock=runner.context.clock,
        max_attempts=mail.max_attempts, backoff=mail.backoff, templates=mail.templates,
        lifetime=mail.lifetime, portal_url=mail.portal_url)


def retry(uow: UnitOfWork, ids: list[int] | None) -> int:
    """Requeue failed messages (all, or the given ids): see ``notifications.dispatch.requeue``."""
    return requeue(uow.session, ids, uow.now)


def list_messages(uow: UnitOfWork, status: MessageStatus | None = None,
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
            for m in uow.session.scalars(query)]


def counts(uow: UnitOfWork) -> dict[str, int]:
    rows = uow.session.execute(select(OutboxMessage.status, func.count())
                               .group_by(OutboxMessage.status)).all()
    return {status.value: n for status, n in rows}


def preview(context: Context, event: str, *, templates: Path | None = None,
            uow: UnitOfWork | None = None, reference: str | None = None,
            portal_url: str | None = None) -> Rendered:
    """The e-mail ``event`` rendered: on its sample payload, or on the context of the last
    message of that event stored for ``reference`` (then ``uow`` is needed)."""
    from notifications.events import EXAMPLES

    stored = EXAMPLES.get(event, {})
    if reference:
        assert uow is not None
        found = uow.session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.event == event,
                   OutboxMessage.reference == reference.strip().upper())
            .order_by(OutboxMessage.id.desc())).first()
        if found is None:
            raise DomainError(f"aucun message « {event} » pour {reference}")
        stored = found.context
    return render(event, stored, fund_name=context.config.fund.name, portal_url=portal_url,
                  override=templates)
