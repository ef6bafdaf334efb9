"""Signing in to the web portal (README, « Portail web : connexion »): a single-use link sent
by email, server-side sessions, and a TOTP code for staff when the fund requires it.

- The answer to a request for a link is the same whether the address is known or not; only an
  address with a role (access.roles_for) is sent one; while a call is open every address has
  one (``prospect``: a new association must be able to start a draft). Requests are
  rate-limited per address and per client over a sliding window, counted from
  ``sign_in_requests`` (refused requests are not recorded, so the limit lifts by itself).
  Counting then recording is atomic: on PostgreSQL the request first takes a transaction-level
  advisory lock per address, then per client (always in that order: no deadlock), so two
  requests at once cannot both see room for one; SQLite's ``BEGIN IMMEDIATE`` serialises them.
- A link's token and a session's cookie are random (``secrets.token_urlsafe(32)``); only their
  SHA-256 is stored and looked up, so comparing them leaks nothing useful by its timing.
- A link is consumed by compare-and-set (``used_at IS NULL AND expires_at > now``, one row):
  two browsers presenting it at once open one session between them.
- Every change happens in the caller's unit of work: a use case that raises writes nothing
  (a link is not burnt by a sign-in that fails)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass
from enum import StrEnum

import pyotp
from sqlalchemy import func, or_, select, update

from models import DomainError, SignInRequest, SignInToken, User, WebSession
from models.base import rows_matched
from notifications import payloads
from notifications.outbox import enqueue, message
from odd17.services import sealing
from odd17.services.access import (
    Principal,
    may_request_sign_in,
    must_confirm_totp,
    roles_for,
)
from odd17.services.accounts import normalise_email, revoke_sessions
from odd17.uow import UnitOfWork

LINK_LIFETIME = dt.timedelta(minutes=15)
TOTP_WAIT = dt.timedelta(minutes=10)      # a session waiting for its code expires sooner
TOTP_MAX_FAILURES = 5                     # then the session is revoked: sign in again
LAST_SEEN_EVERY = dt.timedelta(minutes=5)  # not one write per page view


@dataclass(frozen=True)
class AccountPolicy:
    """The deployment's settings the sign-in use cases need (the entrypoint reads them)."""

    base_url: str
    session_lifetime: dt.timedelta
    max_per_address: int
    max_per_client: int
    window: dt.timedelta
    totp_required_for_staff: bool
    secret_key: str | None = None  # ODD17_SECRET_KEY: opens the sealed TOTP secrets


class RateLimited(DomainError):
    """Too many links asked for: the message says when to try again."""


class InvalidLink(DomainError):
    """A link that is unknown, used or expired (one message for all three)."""


INVALID_LINK = ("Ce lien de connexion n'est plus valable (déjà utilisé, expiré ou incomplet). "
                "Demandez-en un nouveau.")


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


# --- asking for a link ----------------------------------------------------------------------

def request_sign_in(uow: UnitOfWork, policy: AccountPolicy, email: str, client: str) -> None:
    """Record the request and, if the address has a role, queue an email with a link. Returns
    nothing: the caller's answer must not depend on the address being known."""
    address = normalise_email(email)
    client = client[:100] or "inconnu"
    since = uow.now - policy.window
    _serialise(uow, f"sign-in address {address}", f"sign-in client {client}")
    _check_limit(uow, SignInRequest.email == address, since, policy.max_per_address, policy,
                 "cette adresse")
    _check_limit(uow, SignInRequest.client == client, since, policy.max_per_client, policy,
                 "ce poste")
    uow.session.add(SignInRequest(email=address, client=client, at=uow.now))
    if not may_request_sign_in(roles_for(uow.session, address, uow.today)):
        return
    token = secrets.token_urlsafe(32)
    hashed = digest(token)
    uow.session.add(SignInToken(token_hash=hashed, email=address, created_at=uow.now,
                                expires_at=uow.now + LINK_LIFETIME))
    link = payloads.SignInLink(link=f"{policy.base_url}/connexion/{token}", email=address,
                               minutes=int(LINK_LIFETIME.total_seconds() // 60))
    enqueue(uow.session, [message(link, address, key=f"connexion:{hashed}", now=uow.now)])


def _serialise(uow: UnitOfWork, *names: str) -> None:
    """Wait for, then hold until the end of the transaction, one lock per name (PostgreSQL;
    under READ COMMITTED the count that follows sees what the previous holder committed)."""
    if uow.session.get_bind().dialect.name != "postgresql":
        return
    for name in names:
        key = int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big",
                             signed=True)
        uow.session.execute(select(func.pg_advisory_xact_lock(key)))


def _check_limit(uow: UnitOfWork, where: object, since: dt.datetime, limit: int,
                 policy: AccountPolicy, who: str) -> None:
    count, oldest = uow.session.execute(
        select(func.count(), func.min(SignInRequest.at))
        .where(where, SignInRequest.at > since)).one()  # type: ignore[arg-type]
    if count >= limit:
        wait = max(1, math.ceil((oldest + policy.window - uow.now).total_seconds() / 60))
        raise RateLimited(f"Trop de demandes de lien de connexion pour {who} : réessayez dans "
                          f"{wait} minute{'s' if wait > 1 else ''}.")


# --- using a link ---------------------------------------------------------------------------

def link_is_usable(uow: UnitOfWork, token: str) -> bool:
    """For the confirmation page: reading a link does not use it (mail scanners open links)."""
    found = uow.session.scalars(select(SignInToken).where(
        SignInToken.token_hash == digest(token), SignInToken.used_at.is_(None),
        SignInToken.expires_at > uow.now)).first()
    return found is not None


@dataclass(frozen=True)
class NewSession:
    cookie: str            # the cookie's value: shown to the browser, never stored
    principal: Principal
    totp_pending: bool     # a staff sign-in that still needs its TOTP code


def consume_link(uow: UnitOfWork, policy: AccountPolicy, token: str) -> NewSession:
    """Use a link (once) and open a session for its address."""
    table = SignInToken.__table__
    hashed = digest(token)
    used = rows_matched(uow.session.execute(
        update(table).where(table.c.token_hash == hashed, table.c.used_at.is_(None),
                            table.c.expires_at > uow.now).values(used_at=uow.now)))
    if used != 1:
        raise InvalidLink(INVALID_LINK)
    email = uow.session.execute(select(table.c.email).where(table.c.token_hash == hashed)) \
        .scalar_one()
    roles = roles_for(uow.session, email, uow.today)
    if not roles:  # disabled, or no longer a reviewer or an applicant since the link was sent
        raise InvalidLink(INVALID_LINK)
    pending = must_confirm_totp(roles, required_for_staff=policy.totp_required_for_staff)
    if pending:
        user = uow.session.scalars(select(User).where(User.email == email)).one()
        if user.totp_secret is None:
            raise DomainError("Ce compte doit confirmer sa connexion par un code à usage unique, "
                              "qui n'est pas encore configuré : demandez-le à un administrateur "
                              "(odd17 users totp).")
    cookie = secrets.token_urlsafe(32)
    uow.session.add(WebSession(
        id=digest(cookie), email=email, csrf_token=secrets.token_urlsafe(32),
        created_at=uow.now, last_seen_at=uow.now, revoked_at=None,
        expires_at=uow.now + (TOTP_WAIT if pending else policy.session_lifetime),
        totp_confirmed=not pending, totp_failures=0))
    return NewSession(cookie, Principal(email, roles), pending)


# --- sessions -------------------------------------------------------------------------------

@dataclass(frozen=True)
class SessionState:
    id: str
    principal: Principal
    csrf_token: str
    totp_pending: bool


def session_for(uow: UnitOfWork, cookie: str | None) -> SessionState | None:
    """The open session of this cookie, with its roles now; None for an unknown, forged,
    expired or revoked cookie, or an address that lost every role."""
    if not cookie or len(cookie) > 200:
        return None
    found = uow.session.get(WebSession, digest(cookie))
    if found is None or found.revoked_at is not None or found.expires_at <= uow.now:
        return None
    roles = roles_for(uow.session, found.email, uow.today)
    if not roles:
        return None
    if uow.now - found.last_seen_at >= LAST_SEEN_EVERY:
        found.last_seen_at = uow.now
    return SessionState(found.id, Principal(found.email, roles), found.csrf_token,
                        not found.totp_confirmed)


def sign_out(uow: UnitOfWork, cookie: str | None) -> None:
    if cookie:
        table = WebSession.__table__
        uow.session.execute(update(table).where(table.c.id == digest(cookie),
                                                table.c.revoked_at.is_(None))
                            .values(revoked_at=uow.now))


def sign_out_everywhere(uow: UnitOfWork, email: str) -> int:
    """Revoke every open session of the address (this one included); how many."""
    return revoke_sessions(uow, email)


# --- TOTP -----------------------------------------------------------------------------------

class TotpOutcome(StrEnum):
    confirmed = "confirmed"
    wrong = "wrong"        # try again
    locked = "locked"      # too many wrong codes: the session is revoked


def confirm_totp(uow: UnitOfWork, policy: AccountPolicy, state: SessionState,
                 code: str) -> TotpOutcome:
    """Check a staff member's code for a session that waits for it. A code is accepted once
    (its time step is recorded by compare-and-set); wrong codes are counted and the caller
    must commit them, so the outcome is returned rather than raised."""
    row = uow.session.get(WebSession, state.id, with_for_update=True)
    user = uow.session.scalars(select(User).where(User.email == state.principal.email)).first()
    if row is None or user is None or user.totp_secret is None or row.revoked_at is not None:
        return TotpOutcome.locked
    secret = sealing.unseal(user.totp_secret, user.email, policy.secret_key)
    step = _matching_step(secret, code.replace(" ", ""), uow.now)
    if step is not None:
        table = User.__table__
        fresh = rows_matched(uow.session.execute(
            update(table).where(table.c.id == user.id, or_(table.c.totp_last_step.is_(None),
                                                            table.c.totp_last_step < step))
            .values(totp_last_step=step)))
        if fresh == 1:
            if not sealing.is_sealed(user.totp_secret) and policy.secret_key:
                user.totp_secret = sealing.seal(secret, user.email, policy.secret_key)
            row.totp_confirmed = True
            row.expires_at = uow.now + policy.session_lifetime
            return TotpOutcome.confirmed
    row.totp_failures += 1
    if row.totp_failures >= TOTP_MAX_FAILURES:
        row.revoked_at = uow.now
        return TotpOutcome.locked
    return TotpOutcome.wrong


def _matching_step(secret: str, code: str, now: dt.datetime) -> int | None:
    """The time step (this one, or one either side for clock drift) whose code is ``code``."""
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    for drift in (0, -1, 1):
        at = now + dt.timedelta(seconds=drift * totp.interval)
        if hmac.compare_digest(totp.at(at), code):
            return totp.timecode(at)
    return None
