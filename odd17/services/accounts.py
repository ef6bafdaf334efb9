"""Staff accounts (``odd17 users`` and the portal's /admin/comptes): add, list, disable,
enable, TOTP enrolment. Applicants and reviewers need no account: their roles come from the
applications and reviewers tables (odd17/services/access.py).

Each use case takes ``by``: the address of the portal's signed-in administrator, or None for
the CLI's operator (who holds the database, the portal's root, and can always repair). With
``by``, the use case checks that it is an active admin, and an admin can neither disable their
own account nor take away its admin role: so the fund always keeps an active admin. The active
admins' rows are locked first (in id order), so two admins disabling each other at once are
serialised: the second finds it is no longer an admin, and is refused."""

from __future__ import annotations

from dataclasses import dataclass

import pyotp
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select, update

from models import DomainError, NotFound, StaffRole, User, WebSession
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
    id: int = 0  # for the portal's links; not in ``--json``

    def as_json(self) -> dict[str, object]:
        return {"email": self.email, "role": self.role, "disabled": self.disabled,
                "totp": self.totp, "created_at": self.created_at}


def _active_admins(uow: UnitOfWork, by: str | None, *, lock: bool = True) -> None:
    """With ``by``: check that it is an active admin, the active admins' rows locked first (to
    change an account). Nothing for the CLI's operator (None)."""
    if by is None:
        return
    query = select(User.email).where(User.role == StaffRole.admin, User.disabled.is_(False))
    admins = set(uow.session.scalars(
        query.order_by(User.id).with_for_update() if lock else query))
    if by.strip().lower() not in admins:
        raise DomainError("seul un administrateur actif gère les comptes de l'équipe")


def _keep_an_admin(user: User, by: str | None, what: str) -> None:
    """Refuse (with ``by``) that an admin takes the admin role from their own account; ``what``
    names the change. With ``by`` checked to be an active admin under the lock, this is what
    keeps one: any other account they change leaves them."""
    if by is not None and user.email == by.strip().lower():
        raise DomainError(f"vous ne pouvez pas {what} votre propre compte : un autre "
                          "administrateur doit le faire")


def add_user(uow: UnitOfWork, email: str, role: str, *, by: str | None = None) -> bool:
    """Create a staff account, or give an existing one this role and enable it again. True
    when created."""
    address, staff_role = normalise_email(email), parse_role(role)
    _active_admins(uow, by)
    user = uow.session.scalars(select(User).where(User.email == address)
                               .with_for_update()).first()
    if user is None:
        uow.session.add(User(email=address, role=staff_role, disabled=False,
                             created_at=uow.now, updated_at=uow.now))
        uow.session.flush()
        return True
    if staff_role != StaffRole.admin:
        _keep_an_admin(user, by, "retirer le rôle d'administrateur de")
    user.role, user.disabled, user.updated_at = staff_role, False, uow.now
    return False


def list_users(uow: UnitOfWork, *, by: str | None = None) -> list[UserRow]:
    _active_admins(uow, by, lock=False)
    return [UserRow(u.email, u.role.value, u.disabled, u.totp_secret is not None,
                    u.created_at.isoformat(), u.id)
            for u in uow.session.scalars(select(User).order_by(User.email))]


def account_email(uow: UnitOfWork, user_id: int) -> str:
    """The address of account ``user_id`` (the portal's links name accounts by id); NotFound
    for an unknown one."""
    address = uow.session.scalar(select(User.email).where(User.id == user_id))
    if address is None:
        raise NotFound(f"aucun compte n° {user_id}")
    return address


def _existing(uow: UnitOfWork, email: str) -> User:
    address = normalise_email(email)
    user = uow.session.scalars(select(User).where(User.email == address)
                               .with_for_update()).first()
    if user is None:
        raise DomainError(f"aucun compte pour {address} (odd17 users list)")
    return user


def disable_user(uow: UnitOfWork, email: str, *, by: str | None = None) -> int:
    """Disable the account and revoke its open sessions; returns how many were revoked."""
    _active_admins(uow, by)
    user = _existing(uow, email)
    _keep_an_admin(user, by, "désactiver")
    user.disabled, user.updated_at = True, uow.now
    return revoke_sessions(uow, user.email)


def enable_user(uow: UnitOfWork, email: str, *, by: str | None = None) -> bool:
    """Enable a disabled account again (its role unchanged); False if it was not disabled."""
    _active_admins(uow, by)
    user = _existing(uow, email)
    if not user.disabled:
        return False
    user.disabled, user.updated_at = False, uow.now
    return True


def revoke_sessions(uow: UnitOfWork, email: str) -> int:
    table = WebSession.__table__
    return rows_matched(uow.session.execute(
        update(table).where(table.c.email == email, table.c.revoked_at.is_(None))
        .values(revoked_at=uow.now)))


def enrol_totp(uow: UnitOfWork, email: str, key: str | None, *,
               by: str | None = None) -> tuple[str, str]:
    """A new TOTP secret for a staff account (replacing any former one): (secret, otpauth
    URI), to show once to its owner; stored sealed under ``key`` (ODD17_SECRET_KEY). Its open
    sessions are kept (they passed the former code); disabling the account closes them."""
    _active_admins(uow, by)
    user = _existing(uow, email)
    secret = pyotp.random_base32()
    user.totp_secret = sealing.seal(secret, user.email, key)
    user.totp_last_step, user.updated_at = None, uow.now
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=TOTP_ISSUER)
    return secret, uri
