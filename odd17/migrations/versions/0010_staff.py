"""staff workspaces: internal comments, review drafts, personal API tokens

Revision ID: 0010_staff
Revises: 0009_accounts
Create Date: 2026-11-23

``comments`` is append-only like ``status_changes``: triggers refuse UPDATE and DELETE.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_staff"
down_revision: str | None = "0009_accounts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY_MESSAGE = "comments is append-only: the history cannot be changed"


def upgrade() -> None:
    op.create_table(
        "comments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(length=320), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["application_id"], ["applications.id"],
                                name=op.f("fk_comments_application_id_applications")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_comments")),
    )
    op.create_index(op.f("ix_comments_application_id"), "comments", ["application_id"])
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("scope", sa.String(length=30), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_index(op.f("ix_api_tokens_owner"), "api_tokens", ["owner"])
    with op.batch_alter_table("reviews") as batch:
        batch.add_column(sa.Column("draft_scores", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("draft_comment", sa.Text(), nullable=True))
        batch.add_column(sa.Column("draft_saved_at", sa.DateTime(timezone=True), nullable=True))
    _comments_are_append_only()


def _comments_are_append_only() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER comments_no_{verb.lower()} BEFORE {verb} ON comments "
                f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
            )
    else:
        op.execute(
            "CREATE FUNCTION comments_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{APPEND_ONLY_MESSAGE}'; END $$"
        )
        op.execute(
            "CREATE TRIGGER comments_append_only BEFORE UPDATE OR DELETE ON comments "
            "FOR EACH ROW EXECUTE FUNCTION comments_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS comments_no_update")
        op.execute("DROP TRIGGER IF EXISTS comments_no_delete")
    else:
        op.execute("DROP TRIGGER IF EXISTS comments_append_only ON comments")
        op.execute("DROP FUNCTION IF EXISTS comments_append_only()")
    with op.batch_alter_table("reviews") as batch:
        batch.drop_column("draft_saved_at")
        batch.drop_column("draft_comment")
        batch.drop_column("draft_scores")
    op.drop_table("api_tokens")
    op.drop_table("comments")
