"""applicant space: drafts, co-applicants, draft changes, attachments

Revision ID: 0008_applicant_space
Revises: 0007_decision_outcome
Create Date: 2026-11-23

New tables only. ``draft_changes`` is append-only like ``status_changes``: triggers refuse
UPDATE and DELETE.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_applicant_space"
down_revision: str | None = "0007_decision_outcome"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = ("statuts", "budget_previsionnel", "rib", "autre")
APPEND_ONLY_MESSAGE = "draft_changes is append-only: the history cannot be changed"


def upgrade() -> None:
    op.create_table(
        "drafts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.String(length=50), nullable=False),
        sa.Column("lead_email", sa.String(length=320), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"],
                                name=op.f("fk_drafts_call_id_calls")),
        sa.ForeignKeyConstraint(["application_id"], ["applications.id"],
                                name=op.f("fk_drafts_application_id_applications")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drafts")),
        sa.UniqueConstraint("application_id", name=op.f("uq_drafts_application_id")),
    )
    op.create_index(op.f("ix_drafts_lead_email"), "drafts", ["lead_email"])
    op.create_table(
        "draft_members",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("draft_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("invited_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["draft_id"], ["drafts.id"],
                                name=op.f("fk_draft_members_draft_id_drafts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_draft_members")),
        sa.UniqueConstraint("draft_id", "email", name="uq_draft_members_draft_email"),
    )
    op.create_index(op.f("ix_draft_members_draft_id"), "draft_members", ["draft_id"])
    op.create_index(op.f("ix_draft_members_email"), "draft_members", ["email"])
    op.create_table(
        "draft_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("draft_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["draft_id"], ["drafts.id"],
                                name=op.f("fk_draft_changes_draft_id_drafts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_draft_changes")),
    )
    op.create_index(op.f("ix_draft_changes_draft_id"), "draft_changes", ["draft_id"])
    op.create_table(
        "attachments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("draft_id", sa.Integer(), nullable=True),
        sa.Column("application_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.Enum(*KINDS, name="kind", native_enum=False,
                                  create_constraint=True, length=30), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("uploaded_by", sa.String(length=320), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["draft_id"], ["drafts.id"],
                                name=op.f("fk_attachments_draft_id_drafts")),
        sa.ForeignKeyConstraint(["application_id"], ["applications.id"],
                                name=op.f("fk_attachments_application_id_applications")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachments")),
    )
    op.create_index(op.f("ix_attachments_draft_id"), "attachments", ["draft_id"])
    op.create_index(op.f("ix_attachments_application_id"), "attachments", ["application_id"])
    _changes_are_append_only()


def _changes_are_append_only() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER draft_changes_no_{verb.lower()} BEFORE {verb} ON draft_changes "
                f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
            )
    else:
        op.execute(
            "CREATE FUNCTION draft_changes_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{APPEND_ONLY_MESSAGE}'; END $$"
        )
        op.execute(
            "CREATE TRIGGER draft_changes_append_only BEFORE UPDATE OR DELETE ON draft_changes "
            "FOR EACH ROW EXECUTE FUNCTION draft_changes_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS draft_changes_no_update")
        op.execute("DROP TRIGGER IF EXISTS draft_changes_no_delete")
    else:
        op.execute("DROP TRIGGER IF EXISTS draft_changes_append_only ON draft_changes")
        op.execute("DROP FUNCTION IF EXISTS draft_changes_append_only()")
    op.drop_table("attachments")
    op.drop_table("draft_changes")
    op.drop_table("draft_members")
    op.drop_table("drafts")
