"""Web portal accounts (README, « Portail web : connexion »): staff users, single-use sign-in
links, sign-in requests (for the rate limits) and server-side sessions.

No secret is stored in clear: a sign-in token and a session cookie are random values whose
SHA-256 is the row's key, so a copy of the database opens no session. The TOTP secret of a
staff user is the exception (the server must compute the codes)."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import Boolean, Enum, Index, Integer, String, func
from sqlalchemy.orm import Mapped, mapped_column

from models.application import Application, Organisation
from models.base import Base, UTCDateTime

# access.roles_for looks an address up among the applications at every page view: without
# these, a scan (~100 ms for 50,000 applications on SQLite).
Index("ix_applications_contact_email_lower", func.lower(Application.__table__.c.contact_email))
Index("ix_organisations_email_lower", func.lower(Organisation.__table__.c.email))


class StaffRole(StrEnum):
    manager = "manager"    # chargé de mission
    finance = "finance"    # responsable financier
    admin = "admin"        # administrateur


class User(Base):
    """A staff account, created from the CLI. Applicants and reviewers have no row here: their
    role comes from the applications and the reviewers tables. ``disabled`` blocks the address
    altogether (no link, no session), whatever other role it has."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # lower-case
    role: Mapped[StaffRole] = mapped_column(Enum(
        StaffRole, name="role", native_enum=False, create_constraint=True, length=10,
        values_callable=lambda e: [m.value for m in e]))
    disabled: Mapped[bool] = mapped_column(Boolean)
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    # the last TOTP time step accepted: a code is never accepted twice
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class SignInToken(Base):
    """A link sent by email: one use (``used_at`` set by compare-and-set), short-lived."""

    __tablename__ = "sign_in_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex
    email: Mapped[str] = mapped_column(String(320), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class SignInRequest(Base):
    """Every accepted request for a link, known address or not: what the rate limits count."""

    __tablename__ = "sign_in_requests"
    __table_args__ = (Index("ix_sign_in_requests_email_at", "email", "at"),
                      Index("ix_sign_in_requests_client_at", "client", "at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    client: Mapped[str] = mapped_column(String(100))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class WebSession(Base):
    """A signed-in browser. The cookie holds a random value, the row its SHA-256. Roles are
    not copied here: they are computed at each request, so disabling an account or removing a
    reviewer takes effect at once."""

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex of the cookie
    email: Mapped[str] = mapped_column(String(320), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # False while a staff sign-in waits for its TOTP code (the session grants nothing yet)
    totp_confirmed: Mapped[bool] = mapped_column(Boolean)
    totp_failures: Mapped[int] = mapped_column(Integer)
