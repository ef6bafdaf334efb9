"""Staff accounts (``odd17 users``): add, list, disable, TOTP enrolment. Applicants and
reviewers need no account: their roles come from the applications and reviewers tables
(odd17/services/access.py)."""

from __future__ import annotations

from dataclasses import dataclass

import pyotp
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select, update

from models import DomainError, StaffRole, User, WebSession
from models.base import rows_matched
from odd17.services import sealing
from odd17.uow import UnitOfWork
from rules.text import show_controls

TOTP_ISSUER = "Fonds ODD 17"


def normalise_email(value: str) -> str:
    """An address as stored and compared: checked, lower-case. A bad one is a DomainError
    quoting it with its controls made visible."""
    text = value.strip()
    try:
        if len(text) > 320:
            raise EmailNotValidError
        return validate_email(text, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        shown = show_controls(text[:80] + ("…" if len(text) > 80 else ""))
        raise DomainError(f"adresse e-mail invalide : « {shown} »") from None


def parse_role(value: str) -> StaffRole:
    try:
        return StaffRole(value.strip().lower())
    except ValueError:
        raise DomainError(f"rôle inconnu « {show_controls(value[:40])} » "
                          f"(rôles : {', '.join(r.value for r in StaffRole)})") from None


@dataclass(frozen=True)
class UserRow:
    email: str
    role: str
    disabled: bool
    totp: bool
    created_at: str

    def as_json(self) -> dict[str, object]:
        return {"email": self.email, "role": self.role, "disabled": self.disabled,
                "totp": self.totp, "created_at": self.created_at}


def add_user(uow: UnitOfWork, email: str, role: str) -> bool:
    """Create a staff account, or give an existing one this role and enable it again. True
    when created."""
    address, staff_role = normalise_email(email), parse_role(role)
    user = uow.session.scalars(select(User).where(User.email == address)
                               .with_for_update()).first()
    if user is None:
        uow.session.add(User(email=address, role=staff_role, disabled=False,
                             created_at=uow.now, updated_at=uow.now))
        uow.session.flush()
        return True
    user.role, user.disabled, user.updated_at = staff_role, False, uow.now
    return False


def list_users(uow: UnitOfWork) -> list[UserRow]:
    return [UserRow(u.email, u.role.value, u.disabled, u.totp_secret is not None,
                    u.created_at.isoformat())
            for u in uow.session.scalars(select(User).order_by(User.email))]


def _existing(uow: UnitOfWork, email: str) -> User:
    address = normalise_email(email)
    user = uow.session.scalars(select(User).where(User.email == address)
                               .with_for_update()).first()
    if user is None:
        raise DomainError(f"aucun compte pour {address} (odd17 users list)")
    return user


def disable_user(uow: UnitOfWork, email: str) -> int:
    """Disable the account and revoke its open sessions; returns how many were revoked."""
    user = _existing(uow, email)
    user.disabled, user.updated_at = True, uow.now
    return revoke_sessions(uow, user.email)


def revoke_sessions(uow: UnitOfWork, email: str) -> int:
    table = WebSession.__table__
    return rows_matched(uow.session.execute(
        update(table).where(table.c.email == email, table.c.revoked_at.is_(None))
        .values(revoked_at=uow.now)))


def enrol_totp(uow: UnitOfWork, email: str, key: str | None) -> tuple[str, str]:
    """A new TOTP secret for a staff account (replacing any former one): (secret, otpauth
    URI), to show once to its owner; stored sealed under ``key`` (ODD17_SECRET_KEY)."""
    user = _existing(uow, email)
    secret = pyotp.random_base32()
    user.totp_secret = sealing.seal(secret, user.email, key)
    user.totp_last_step, user.updated_at = None, uow.now
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=TOTP_ISSUER)
    return secret, uri
