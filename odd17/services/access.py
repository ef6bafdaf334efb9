"""Who may do what on the web portal, in one place: the roles of an address, one authorisation
function per use case of the sign-in, and who may see what in the applicant's space (issue 13).

A role is not stored on a session: :func:`roles_for` computes it from the tables at each
request (staff accounts, reviewers, applications, drafts), so a disabled account or a reviewer
set inactive loses access at once. The web layer asks these functions, never a template.

In the applicant's space, anyone not allowed gets the same ``NotFound`` as for an object that
does not exist, so guessing identifiers reveals nothing (no enumeration)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import (
    Application,
    Call,
    DomainError,
    Draft,
    DraftMember,
    NotFound,
    Organisation,
    Reviewer,
    User,
)
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


# --- roles of the portal --------------------------------------------------------------------------

class Role(StrEnum):
    applicant = "applicant"    # lead's or co-applicant's address of an application
    reviewer = "reviewer"      # an active reviewer who may be assigned applications
    committee = "committee"    # an active committee member
    manager = "manager"        # staff: chargé de mission
    finance = "finance"        # staff: responsable financier
    admin = "admin"            # staff: administrateur
    # an address with no other role while a call is open: may see the open calls and start a
    # draft (then it is an applicant); without it, a new association could never sign in
    prospect = "prospect"


STAFF = frozenset({Role.manager, Role.finance, Role.admin})

ROLE_LABELS: dict[Role, str] = {
    Role.applicant: "porteur de projet",
    Role.reviewer: "évaluateur",
    Role.committee: "membre du comité",
    Role.manager: "chargé de mission",
    Role.finance: "responsable financier",
    Role.admin: "administrateur",
    Role.prospect: "futur porteur de projet",
}
APPLICANT_SPACE = frozenset({Role.applicant, Role.prospect})


@dataclass(frozen=True)
class Principal:
    """Who a request acts for: a signed-in address and its roles at this moment."""

    email: str
    roles: frozenset[Role]

    @property
    def is_staff(self) -> bool:
        return bool(self.roles & STAFF)


# --- roles ---------------------------------------------------------------------------------

def _is_lead(session: Session, email: str) -> bool:
    """The lead's contact address of an application (as submitted), or its organisation's."""
    by_contact = select(Application.id).where(func.lower(Application.contact_email) == email)
    by_lead = (select(Application.id).join(Organisation, Organisation.id == Application.lead_id)
               .where(func.lower(Organisation.email) == email))
    return session.execute(by_contact.limit(1)).first() is not None \
        or session.execute(by_lead.limit(1)).first() is not None


def _in_a_draft(session: Session, email: str) -> bool:
    """The lead or a co-applicant of a draft (both stored lower-case)."""
    as_lead = select(Draft.id).where(Draft.lead_email == email)
    as_member = select(DraftMember.id).where(DraftMember.email == email)
    return session.execute(as_lead.limit(1)).first() is not None \
        or session.execute(as_member.limit(1)).first() is not None


# Each says whether ``email`` (lower-case) is an applicant's address.
APPLICANT_CHECKS: list[Callable[[Session, str], bool]] = [_is_lead, _in_a_draft]


def a_call_is_open(session: Session, day: dt.date) -> bool:
    return session.execute(select(Call.id).where(Call.opens_on <= day, Call.closes_on >= day)
                           .limit(1)).first() is not None


def roles_for(session: Session, email: str, day: dt.date | None = None) -> frozenset[Role]:
    """Every role of ``email`` (lower-case) now; none for a disabled account, whatever else
    the address is (disabling an account locks the address out). ``day`` (the fund's date
    today): an address with no other role is a ``prospect`` while a call is open that day."""
    user = session.scalars(select(User).where(User.email == email)).first()
    if user is not None and user.disabled:
        return frozenset()
    roles: set[Role] = set()
    if user is not None:
        roles.add(Role(user.role.value))
    reviewer = session.scalars(select(Reviewer).where(func.lower(Reviewer.email) == email,
                                                      Reviewer.active.is_(True))).first()
    if reviewer is not None:
        if reviewer.reviews:
            roles.add(Role.reviewer)
        if reviewer.committee:
            roles.add(Role.committee)
    if any(check(session, email) for check in APPLICANT_CHECKS):
        roles.add(Role.applicant)
    if not roles and day is not None and a_call_is_open(session, day):
        roles.add(Role.prospect)
    return frozenset(roles)


# --- one authorisation function per use case ---------------------------------------------

def may_request_sign_in(roles: frozenset[Role]) -> bool:
    """A link is sent only to an address with a role, ``prospect`` included: while a call is
    open, any address (the answer on screen is the same)."""
    return bool(roles)


def must_confirm_totp(roles: frozenset[Role], *, required_for_staff: bool) -> bool:
    return required_for_staff and bool(roles & STAFF)


def may_view_own_space(principal: Principal | None) -> bool:
    """« Mon espace »: anybody signed in with at least one role."""
    return principal is not None and bool(principal.roles)


def may_use_applicant_space(principal: Principal | None) -> bool:
    """The open calls, drafts, applications as their applicant: an applicant or a prospect
    (each object is then checked by ``draft_for`` / ``application_for``: 404 if not theirs)."""
    return principal is not None and bool(principal.roles & APPLICANT_SPACE)


def may_sign_out(principal: Principal | None) -> bool:
    return principal is not None


def has_any(principal: Principal | None, roles: frozenset[Role]) -> bool:
    """The generic rule of a staff page: one of ``roles``."""
    return principal is not None and bool(principal.roles & roles)
