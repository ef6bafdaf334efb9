"""Internal comments on an application (issue 14): written by staff, never shown to the
applicant, append-only (the database refuses to change or delete one), and shown with the
status changes in the application's history."""

from __future__ import annotations

import datetime as dt
from typing import Literal, TypedDict

from sqlalchemy import select

from models import Comment, DomainError, StatusChange
from models.lookup import application_by_reference
from odd17.uow import UnitOfWork
from rules.labels import status_label

MAX_LENGTH = 10_000


class CommentView(TypedDict):
    id: int
    author: str
    body: str
    at: str


class HistoryEntry(TypedDict):
    kind: Literal["status", "comment"]
    at: str
    actor: str
    text: str                       # the comment, or the reason of the status change
    from_status: str | None
    to_status: str | None
    to_label: str | None


def add_comment(uow: UnitOfWork, reference: str, body: str) -> CommentView:
    """A staff member's comment (the unit of work's actor), kept as typed."""
    text = body.strip()
    if not text:
        raise DomainError("commentaire vide : rien n'a été enregistré")
    if len(text) > MAX_LENGTH:
        raise DomainError(f"commentaire trop long : {len(text)} caractères, au plus "
                          f"{MAX_LENGTH}")
    app = application_by_reference(uow.session, reference)
    comment = Comment(application_id=app.id, author=uow.actor, body=text, at=uow.now)
    uow.session.add(comment)
    uow.session.flush()
    return _view(comment)


def _view(comment: Comment) -> CommentView:
    return CommentView(id=comment.id, author=comment.author, body=comment.body,
                       at=comment.at.isoformat())


def comments(uow: UnitOfWork, reference: str) -> list[CommentView]:
    app = application_by_reference(uow.session, reference)
    return [_view(c) for c in uow.session.scalars(
        select(Comment).where(Comment.application_id == app.id).order_by(Comment.id))]


def history(uow: UnitOfWork, reference: str) -> list[HistoryEntry]:
    """Status changes and internal comments in the order they happened (staff only)."""
    session = uow.session
    app = application_by_reference(session, reference)
    entries: list[tuple[dt.datetime, int, int, HistoryEntry]] = []
    for change in session.scalars(select(StatusChange).where(
            StatusChange.application_id == app.id)):
        to = change.to_status.value
        entries.append((change.at, 0, change.id, HistoryEntry(
            kind="status", at=change.at.isoformat(), actor=change.actor, text=change.reason,
            from_status=change.from_status.value if change.from_status else None,
            to_status=to, to_label=status_label(to))))
    for comment in session.scalars(select(Comment).where(Comment.application_id == app.id)):
        entries.append((comment.at, 1, comment.id, HistoryEntry(
            kind="comment", at=comment.at.isoformat(), actor=comment.author, text=comment.body,
            from_status=None, to_status=None, to_label=None)))
    entries.sort(key=lambda e: e[:3])
    return [e[3] for e in entries]
