"""Who may do what on the web portal: roles, and one authorisation function per use case.

A role is not stored on a session: :func:`roles_for` computes it from the tables at each
request (staff accounts, reviewers, applications), so a disabled account or a reviewer set
inactive loses access at once. The web layer asks these functions, never a template."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import Application, Organisation, Reviewer, User


class Role(StrEnum):
    applicant = "applicant"    # lead's or co-applicant's address of an application
    reviewer = "reviewer"      # an active reviewer who may be assigned applications
    committee = "committee"    # an active committee member
    manager = "manager"        # staff: chargé de mission
    finance = "finance"        # staff: responsable financier
    admin = "admin"            # staff: administrateur


STAFF = frozenset({Role.manager, Role.finance, Role.admin})

ROLE_LABELS: dict[Role, str] = {
    Role.applicant: "porteur de projet",
    Role.reviewer: "évaluateur",
    Role.committee: "membre du comité",
    Role.manager: "chargé de mission",
    Role.finance: "responsable financier",
    Role.admin: "administrateur",
}


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


# Each says whether ``email`` (lower-case) is an applicant's address. Co-applicants of drafts
# add their check here.
APPLICANT_CHECKS: list[Callable[[Session, str], bool]] = [_is_lead]


def roles_for(session: Session, email: str) -> frozenset[Role]:
    """Every role of ``email`` (lower-case) now; none for a disabled account, whatever else
    the address is (disabling an account locks the address out)."""
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
    return frozenset(roles)


# --- one authorisation function per use case ---------------------------------------------

def may_request_sign_in(roles: frozenset[Role]) -> bool:
    """A link is sent only to an address with a role (the answer on screen is the same)."""
    return bool(roles)


def must_confirm_totp(roles: frozenset[Role], *, required_for_staff: bool) -> bool:
    return required_for_staff and bool(roles & STAFF)


def may_view_own_space(principal: Principal | None) -> bool:
    """« Mon espace »: anybody signed in with at least one role."""
    return principal is not None and bool(principal.roles)


def may_sign_out(principal: Principal | None) -> bool:
    return principal is not None


def has_any(principal: Principal | None, roles: frozenset[Role]) -> bool:
    """The generic rule of a staff page: one of ``roles``."""
    return principal is not None and bool(principal.roles & roles)
