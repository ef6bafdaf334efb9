"""Who may see what in the applicant's space (issue 13). One place per kind of object: every
use case of drafts, attachments and the application page asks here.

Anyone not allowed gets the same ``NotFound`` as for an object that does not exist, so guessing
identifiers reveals nothing (no enumeration)."""

from __future__ import annotations

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Application, DomainError, Draft, DraftMember, NotFound
from rules.document import Email

_EMAIL: TypeAdapter[str] = TypeAdapter(Email)
DRAFT_NOT_FOUND = "brouillon introuvable"


def normalise_email(value: str) -> str:
    """The address as the applicant's space compares it: checked, then lower-cased (the
    portal signs people in by address, whatever its case)."""
    try:
        return _EMAIL.validate_python(value).lower()
    except ValidationError:
        raise DomainError(f"adresse e-mail invalide : « {value[:320]} »") from None


def _same(a: str, b: str) -> bool:
    return a.strip().lower() == b.strip().lower()


def is_draft_lead(draft: Draft, email: str) -> bool:
    return _same(draft.lead_email, email)


def is_draft_member(session: Session, draft: Draft, email: str) -> bool:
    return session.scalar(select(DraftMember.id).where(
        DraftMember.draft_id == draft.id, DraftMember.email == email.strip().lower())) is not None


def draft_for(session: Session, draft_id: int, email: str, *, lead_only: bool = False,
              lock: bool = False) -> Draft:
    """The draft if ``email`` is its lead (or, unless ``lead_only``, a co-applicant); the
    same ``NotFound`` otherwise. ``lock``: take the row lock first (PostgreSQL)."""
    draft = session.get(Draft, draft_id, with_for_update=lock or None)
    if draft is None:
        raise NotFound(DRAFT_NOT_FOUND)
    if is_draft_lead(draft, email):
        return draft
    if not lead_only and is_draft_member(session, draft, email):
        return draft
    raise NotFound(DRAFT_NOT_FOUND)


def can_view_application(session: Session, email: str, application: Application) -> bool:
    """The lead's address (the document's ``lead.email``, or the lead of the draft it came
    from) or a co-applicant of that draft."""
    if _same(application.contact_email, email):
        return True
    return is_application_lead(session, email, application) or session.scalar(
        select(DraftMember.id).join(Draft, Draft.id == DraftMember.draft_id).where(
            Draft.application_id == application.id,
            DraftMember.email == email.strip().lower())) is not None


def is_application_lead(session: Session, email: str, application: Application) -> bool:
    """Those who may act for the application (withdraw it): its contact or its draft's lead."""
    if _same(application.contact_email, email):
        return True
    return session.scalar(select(Draft.id).where(
        Draft.application_id == application.id,
        Draft.lead_email == email.strip().lower())) is not None


def application_for(session: Session, reference: str, email: str, *,
                    lead_only: bool = False, lock: bool = False) -> Application:
    """The application if ``email`` may see it (act on it, with ``lead_only``); the same
    ``NotFound`` otherwise."""
    query = select(Application).where(Application.reference == reference.strip().upper())
    if lock:
        query = query.with_for_update(of=Application.__table__)
    app = session.scalars(query).first()
    allowed = app is not None and (
        is_application_lead(session, email, app) if lead_only
        else can_view_application(session, email, app))
    if app is None or not allowed:
        raise NotFound(f"aucun dossier de référence « {reference[:30]} »")
    return app
