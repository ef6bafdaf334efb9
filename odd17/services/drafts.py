"""Drafts of application documents (issue 13): created by a lead, saved at any time (valid or
not), shared with co-applicants invited by email, every save recorded as who changed which
fields.

Concurrent saves: each save takes the draft's row lock (``BEGIN IMMEDIATE`` on SQLite), diffs
against the document stored at that moment and appends one change row; the last save wins and
the history records both. A page that wants to refuse a save over someone else's passes the
``expected_version`` it showed. Submission: odd17/services/submission.py."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any, TypedDict

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from models import (
    Application,
    Call,
    ConcurrentChange,
    DomainError,
    Draft,
    DraftChange,
    DraftMember,
    NotFound,
)
from notifications import payloads
from notifications.outbox import enqueue, message
from odd17.services.access import draft_for, is_draft_lead, normalise_email
from odd17.uow import UnitOfWork
from rules.document import field_path

MAX_DOCUMENT_BYTES = 256 * 1024  # a complete document is ~3 KB; 50 partners ~15 KB
MAX_MEMBERS = 50
MAX_FIELDS_RECORDED = 200  # a change touching more is recorded as its first 200 paths + "…"
_CONTROL = {*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F}


class MemberView(TypedDict):
    email: str
    invited_at: str
    accepted: bool


class ChangeView(TypedDict):
    email: str
    at: str
    version: int
    fields: list[str]


class DraftView(TypedDict):
    id: int
    call: str
    lead_email: str
    document: dict[str, Any]
    version: int
    created_at: str
    updated_at: str
    reference: str | None  # the application's, once submitted
    members: list[MemberView]
    changes: list[ChangeView]


class DraftSummary(TypedDict):
    id: int
    call: str
    title: str | None
    role: str  # "lead" or "member"
    updated_at: str
    reference: str | None


def _open_call(session: Session, call_id: str | None, day: dt.date) -> Call:
    calls = session.scalars(select(Call).order_by(Call.id)).all()
    if call_id is not None:
        call = next((c for c in calls if c.id == call_id), None)
        if call is None:
            raise NotFound(f"appel à projets « {call_id[:50]} » inconnu")
        if not call.is_open(day):
            raise DomainError(f"l'appel à projets « {call.id} » n'est pas ouvert")
        return call
    open_calls = [c for c in calls if c.is_open(day)]
    if len(open_calls) != 1:
        raise DomainError("aucun appel à projets ouvert" if not open_calls else
                          "plusieurs appels à projets sont ouverts : choisissez-en un")
    return open_calls[0]


def create_draft(uow: UnitOfWork, email: str, *, call_id: str | None = None,
                 document: dict[str, Any] | None = None) -> int:
    """A new draft led by ``email`` for an open call (the only one, if none is named)."""
    lead = normalise_email(email)
    call = _open_call(uow.session, call_id, uow.today)
    document = check_document(document or {})
    draft = Draft(call_id=call.id, lead_email=lead, document=document, version=1,
                  created_at=uow.now, updated_at=uow.now)
    uow.session.add(draft)
    uow.session.flush()
    uow.session.add(DraftChange(draft_id=draft.id, email=lead, at=uow.now, version=1,
                                fields=_recorded(diff_paths({}, document))))
    return draft.id


def check_document(document: Any) -> dict[str, Any]:
    """A draft may be incomplete or invalid, but it is a JSON object of bounded size without
    control characters (PostgreSQL refuses NUL; none belongs in an application)."""
    if not isinstance(document, dict):
        raise DomainError("le brouillon doit être un objet JSON")
    try:
        text = json.dumps(document, ensure_ascii=False, allow_nan=False)
        size = len(text.encode("utf-8", "surrogatepass"))
    except (TypeError, ValueError):
        raise DomainError("le brouillon contient des valeurs qui ne sont pas du JSON") from None
    if size > MAX_DOCUMENT_BYTES:
        raise DomainError(f"brouillon trop volumineux : {size} octets, au plus "
                          f"{MAX_DOCUMENT_BYTES}")
    bad = [path for path, value in _leaves(document, ())
           if isinstance(value, str) and _has_control(value)]
    bad += [field_path(path) for path in _keys_with_control(document, ())]
    if bad:
        raise DomainError("caractère de contrôle interdit (par exemple NUL) dans : "
                          + ", ".join(bad[:10]))
    return document


def _has_control(text: str) -> bool:
    return any(ord(ch) in _CONTROL or 0xD800 <= ord(ch) <= 0xDFFF for ch in text)


def _keys_with_control(value: Any, path: tuple[str | int, ...]) -> Iterator[tuple[str | int, ...]]:
    if isinstance(value, dict):
        for key, item in value.items():
            if _has_control(str(key)):
                yield (*path, repr(key)[1:-1])
            else:
                yield from _keys_with_control(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _keys_with_control(item, (*path, i))


def _leaves(value: Any, path: tuple[str | int, ...]) -> Iterator[tuple[str, Any]]:
    """(field path, value) of every scalar, empty list and empty object of a JSON value."""
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from _leaves(item, (*path, str(key)))
    elif isinstance(value, list) and value:
        for i, item in enumerate(value):
            yield from _leaves(item, (*path, i))
    elif path:  # the empty document itself is no field
        yield field_path(path), value


def diff_paths(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The field paths whose value differs between two documents (added, changed, removed),
    in the order of the new document then the removed ones."""
    before, after = dict(_leaves(old, ())), dict(_leaves(new, ()))
    changed = [p for p, v in after.items() if p not in before or _differs(before[p], v)]
    return changed + [p for p in before if p not in after]


def _differs(a: Any, b: Any) -> bool:
    return type(a) is not type(b) or a != b  # 1 and 1.0 and True are different edits


def _recorded(paths: list[str]) -> list[str]:
    return paths if len(paths) <= MAX_FIELDS_RECORDED else [*paths[:MAX_FIELDS_RECORDED], "…"]


def _editable(draft: Draft) -> None:
    if draft.application_id is not None:
        raise DomainError("ce brouillon a été déposé : il ne peut plus être modifié")


def save_draft(uow: UnitOfWork, draft_id: int, email: str, document: Any, *,
               expected_version: int | None = None) -> list[str]:
    """Store the document as it is (partial documents allowed) and record who changed which
    fields; returns those fields (none: nothing written)."""
    who = email.strip().lower()
    draft = draft_for(uow.session, draft_id, who, lock=True)
    _editable(draft)
    document = check_document(document)
    if expected_version is not None and expected_version != draft.version:
        last = uow.session.scalars(select(DraftChange).where(DraftChange.draft_id == draft.id)
                                   .order_by(DraftChange.id.desc()).limit(1)).first()
        by = f" par {last.email}" if last else ""
        raise ConcurrentChange(f"brouillon modifié entre-temps{by} (version {draft.version}, "
                               f"vous éditiez la version {expected_version}) : rechargez-le ; "
                               "rien n'a été enregistré")
    fields = diff_paths(draft.document, document)
    if not fields:
        return []
    draft.document = dict(document)  # a new object: the ORM sees the change
    draft.version += 1
    draft.updated_at = uow.now
    uow.session.add(DraftChange(draft_id=draft.id, email=who, at=uow.now,
                                version=draft.version, fields=_recorded(fields)))
    _accept(uow, draft, who)
    return fields


def _accept(uow: UnitOfWork, draft: Draft, email: str) -> None:
    """A co-applicant's first visit accepts the invitation."""
    if is_draft_lead(draft, email):
        return
    member = uow.session.scalars(select(DraftMember).where(
        DraftMember.draft_id == draft.id, DraftMember.email == email)).first()
    if member is not None and member.accepted_at is None:
        member.accepted_at = uow.now


def load_draft(uow: UnitOfWork, draft_id: int, email: str) -> DraftView:
    who = email.strip().lower()
    draft = draft_for(uow.session, draft_id, who)
    _accept(uow, draft, who)
    changes = uow.session.scalars(select(DraftChange).where(DraftChange.draft_id == draft.id)
                                  .order_by(DraftChange.id)).all()
    return {
        "id": draft.id, "call": draft.call_id, "lead_email": draft.lead_email,
        "document": draft.document, "version": draft.version,
        "created_at": draft.created_at.isoformat(), "updated_at": draft.updated_at.isoformat(),
        "reference": _reference(uow.session, draft),
        "members": [{"email": m.email, "invited_at": m.invited_at.isoformat(),
                     "accepted": m.accepted} for m in draft.members],
        "changes": [{"email": c.email, "at": c.at.isoformat(), "version": c.version,
                     "fields": list(c.fields)} for c in changes],
    }


def _reference(session: Session, draft: Draft) -> str | None:
    if draft.application_id is None:
        return None
    return session.scalar(select(Application.reference)
                          .where(Application.id == draft.application_id))


def list_drafts(uow: UnitOfWork, email: str) -> list[DraftSummary]:
    """The drafts ``email`` leads or was invited to, most recently changed first."""
    who = email.strip().lower()
    member_of = select(DraftMember.draft_id).where(DraftMember.email == who)
    drafts = uow.session.scalars(
        select(Draft).where(or_(Draft.lead_email == who, Draft.id.in_(member_of)))
        .order_by(Draft.updated_at.desc(), Draft.id.desc())).all()
    return [{"id": d.id, "call": d.call_id, "title": _title(d.document),
             "role": "lead" if d.lead_email == who else "member",
             "updated_at": d.updated_at.isoformat(),
             "reference": _reference(uow.session, d)} for d in drafts]


def _title(document: dict[str, Any]) -> str | None:
    title = document.get("title")
    return title if isinstance(title, str) and title.strip() else None


def draft_link(public_url: str, draft_id: int) -> str:
    """Where a draft's page is (the portal's route for it must match)."""
    return f"{public_url.rstrip('/')}/brouillons/{draft_id}"


def invite(uow: UnitOfWork, draft_id: int, email: str, invitee: str, *,
           public_url: str) -> MemberView:
    """The lead invites a co-applicant, who gets an email with the draft's link."""
    draft = draft_for(uow.session, draft_id, email, lead_only=True, lock=True)
    _editable(draft)
    address = normalise_email(invitee)
    if is_draft_lead(draft, address):
        raise DomainError("vous êtes le porteur de ce brouillon : inutile de vous inviter")
    if any(m.email == address for m in draft.members):
        raise DomainError(f"{address} est déjà invité sur ce brouillon")
    if len(draft.members) >= MAX_MEMBERS:
        raise DomainError(f"au plus {MAX_MEMBERS} co-porteurs par brouillon")
    member = DraftMember(draft_id=draft.id, email=address, invited_at=uow.now)
    draft.members.append(member)
    uow.session.flush()
    enqueue(uow.session, [message(
        payloads.InvitationCoapplicant(
            inviter=draft.lead_email, invitee=address,
            title=_title(draft.document) or "(sans titre)", call=draft.call_id,
            link=draft_link(public_url, draft.id)), address,
        key=f"invitation_coapplicant:{draft.id}:{member.id}", now=uow.now)])
    return {"email": address, "invited_at": uow.now.isoformat(), "accepted": False}


def remove_member(uow: UnitOfWork, draft_id: int, email: str, member_email: str) -> None:
    """The lead removes a co-applicant: they lose access to the draft (and its application)."""
    draft = draft_for(uow.session, draft_id, email, lead_only=True, lock=True)
    address = member_email.strip().lower()
    member = next((m for m in draft.members if m.email == address), None)
    if member is None:
        raise NotFound(f"aucun co-porteur « {member_email[:320]} » sur ce brouillon")
    uow.session.delete(member)
    uow.session.flush()
    uow.session.expire(draft, ["members"])



class CallView(TypedDict):
    id: str
    title: str
    opens_on: str
    closes_on: str


def open_calls(uow: UnitOfWork) -> list[CallView]:
    """The calls open today (the fund's date): those a new draft may be for."""
    day = uow.today
    return [{"id": c.id, "title": c.title, "opens_on": c.opens_on.isoformat(),
             "closes_on": c.closes_on.isoformat()}
            for c in uow.session.scalars(select(Call).order_by(Call.id)) if c.is_open(day)]
