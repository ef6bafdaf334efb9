"""Personal API tokens (issue 14): for scripts calling ``/api/v1``, created and revoked from
the CLI or the web, stored hashed, scoped to the owner's role when created.

The secret (``odd17_`` + 32 random bytes, URL-safe) is returned once, by :func:`create`; the
table keeps its SHA-256. Authenticating hashes what is presented and looks the hash up (a
unique index): no secret is compared character by character, and a copy of the database
authenticates nobody. A token stops working when revoked, and when its owner no longer holds
the role it was created with (account disabled, reviewer removed, role changed)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from typing import TypedDict

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models import ApiToken, DomainError, NotFound, Reviewer, User
from models.base import rows_matched
from odd17.uow import UnitOfWork
from rules.document import Email

PREFIX = "odd17_"
NAME_MAX = 100
_EMAIL: TypeAdapter[str] = TypeAdapter(Email)


class TokenView(TypedDict):
    id: int
    owner: str
    name: str
    prefix: str                 # the secret's first characters, to tell tokens apart
    scope: str
    created_at: str
    last_used_at: str | None
    revoked_at: str | None
    active: bool


class Created(TypedDict):
    token: TokenView
    secret: str                 # shown once: only its hash is kept


def owner_role(session: Session, email: str) -> str | None:
    """The role a token of ``email`` is scoped to: a staff account's role (none when the
    account is disabled), else committee member, else reviewer (active ones); None for an
    address with no role."""
    user = session.scalars(select(User).where(User.email == email)).first()
    if user is not None:
        return None if user.disabled else user.role.value
    reviewer = session.scalars(select(Reviewer).where(Reviewer.email == email)).first()
    if reviewer is None or not reviewer.active:
        return None
    if reviewer.committee:
        return "committee"
    return "reviewer" if reviewer.reviews else None


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _view(token: ApiToken) -> TokenView:
    return TokenView(id=token.id, owner=token.owner, name=token.name, prefix=token.prefix,
                     scope=token.scope, created_at=token.created_at.isoformat(),
                     last_used_at=_iso(token.last_used_at), revoked_at=_iso(token.revoked_at),
                     active=token.revoked_at is None)


def _email(value: str) -> str:
    try:
        return _EMAIL.validate_python(value.strip()).lower()
    except ValidationError:
        raise DomainError(f"adresse électronique invalide : « {value} »") from None


def create(uow: UnitOfWork, owner: str, name: str) -> Created:
    """A new token for ``owner``, scoped to their current role; the secret is in the result
    and nowhere else."""
    email, label = _email(owner), " ".join(name.split())
    if not label:
        raise DomainError("le nom du jeton est obligatoire (--name)")
    if len(label) > NAME_MAX:
        raise DomainError(f"nom du jeton trop long : {len(label)} caractères, au plus "
                          f"{NAME_MAX}")
    role = owner_role(uow.session, email)
    if role is None:
        raise DomainError(f"{email} n'a aucun rôle dans le fonds : pas de jeton")
    secret = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(owner=email, name=label, token_hash=digest(secret),
                     prefix=secret[:len(PREFIX) + 6], scope=role, created_at=uow.now)
    uow.session.add(token)
    uow.session.flush()
    return Created(token=_view(token), secret=secret)


def list_tokens(uow: UnitOfWork, owner: str | None = None) -> list[TokenView]:
    """Every token (or an owner's), newest first; never a secret."""
    query = select(ApiToken).order_by(ApiToken.id.desc())
    if owner is not None:
        query = query.where(ApiToken.owner == owner.strip().lower())
    return [_view(t) for t in uow.session.scalars(query)]


def revoke(uow: UnitOfWork, token_id: int, *, owner: str | None = None) -> TokenView:
    """Revoke a token (compare-and-set: revoked once, by one caller). ``owner``: only theirs
    (the web); a token of someone else is reported as not found."""
    table = ApiToken.__table__
    query = select(ApiToken).where(ApiToken.id == token_id)
    if owner is not None:
        query = query.where(ApiToken.owner == owner.strip().lower())
    token = uow.session.scalars(query).first()
    if token is None:
        raise NotFound(f"aucun jeton n°{token_id}")
    moved = rows_matched(uow.session.execute(
        update(table).where(table.c.id == token.id, table.c.revoked_at.is_(None))
        .values(revoked_at=uow.now)))
    if moved != 1:
        raise DomainError(f"le jeton n°{token_id} est déjà révoqué")
    uow.session.refresh(token)
    return _view(token)


class Principal(TypedDict):
    token_id: int
    owner: str
    scope: str


INVALID = "jeton d'API invalide ou révoqué"


def authenticate(uow: UnitOfWork, secret: str) -> Principal:
    """Who presents ``secret``: refused (one message for every case, saying nothing of which)
    when unknown, revoked, or when the owner no longer holds the token's role. Notes the time
    of use."""
    if not secret.startswith(PREFIX) or len(secret) > 200:
        raise DomainError(INVALID)
    wanted = digest(secret)
    token = uow.session.scalars(select(ApiToken).where(ApiToken.token_hash == wanted)).first()
    if (token is None or not hmac.compare_digest(token.token_hash, wanted)
            or token.revoked_at is not None
            or owner_role(uow.session, token.owner) != token.scope):
        raise DomainError(INVALID)
    token.last_used_at = uow.now
    uow.session.flush()
    return Principal(token_id=token.id, owner=token.owner, scope=token.scope)
