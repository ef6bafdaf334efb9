"""accounts

Revision ID: 0009_accounts
Revises: 0008_applicant_space
Create Date: 2026-11-23

Web portal accounts: staff users, sign-in links (hashed), sign-in requests (rate limits) and
server-side sessions (keyed by the hash of the cookie); indexes on the lower-cased addresses of
applications and organisations (the roles of an address are looked up at each request).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_accounts"
down_revision: str | None = "0008_applicant_space"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("role", sa.Enum("manager", "finance", "admin", name="role", native_enum=False,
                                  create_constraint=True, length=10), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("totp_secret", sa.String(length=64), nullable=True),
        sa.Column("totp_last_step", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_table(
        "sign_in_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sign_in_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_sign_in_tokens_token_hash")),
    )
    op.create_index(op.f("ix_sign_in_tokens_email"), "sign_in_tokens", ["email"])
    op.create_table(
        "sign_in_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("client", sa.String(length=100), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sign_in_requests")),
    )
    op.create_index("ix_sign_in_requests_email_at", "sign_in_requests", ["email", "at"])
    op.create_index("ix_sign_in_requests_client_at", "sign_in_requests", ["client", "at"])
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("totp_confirmed", sa.Boolean(), nullable=False),
        sa.Column("totp_failures", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_sessions")),
    )
    op.create_index(op.f("ix_web_sessions_email"), "web_sessions", ["email"])
    # the roles of an address are looked up at each page view (access.roles_for)
    op.create_index("ix_applications_contact_email_lower", "applications",
                    [sa.text("lower(contact_email)")])
    op.create_index("ix_organisations_email_lower", "organisations", [sa.text("lower(email)")])


def downgrade() -> None:
    op.drop_index("ix_organisations_email_lower", table_name="organisations")
    op.drop_index("ix_applications_contact_email_lower", table_name="applications")
    op.drop_table("web_sessions")
    op.drop_table("sign_in_requests")
    op.drop_table("sign_in_tokens")
    op.drop_table("users")
