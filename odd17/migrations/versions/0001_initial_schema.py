"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22

Money columns hold integer cents; timestamps are UTC. The status history is append-only: triggers
refuse UPDATE and DELETE on status_changes on both SQLite and PostgreSQL.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "funds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("envelope", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("siret", sa.String(length=14), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_funds")),
    )
    op.create_table(
        "organisations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("identifier", sa.String(length=300), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("siret", sa.String(length=20), nullable=True),
        sa.Column("rna", sa.String(length=20), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisations")),
        sa.UniqueConstraint("identifier", name=op.f("uq_organisations_identifier")),
    )
    op.create_table(
        "reference_counters",
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("year", name=op.f("pk_reference_counters")),
    )
    op.create_table(
        "calls",
        sa.Column("id", sa.String(length=50), nullable=False),
        sa.Column("fund_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("opens_on", sa.Date(), nullable=False),
        sa.Column("closes_on", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(["fund_id"], ["funds.id"], name=op.f("fk_calls_fund_id_funds")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calls")),
    )
    op.create_table(
        "applications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=30), nullable=False),
        sa.Column("call_id", sa.String(length=50), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("dedup_key", sa.String(length=600), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "submitted",
                "eligible",
                "ineligible",
                "in_review",
                "committee",
                "approved",
                "rejected",
                "active",
                "closed",
                "withdrawn",
                "cancelled",
                name="status",
                native_enum=False,
                create_constraint=True,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("contact_email", sa.String(length=320), nullable=False),
        sa.Column("primary_objective", sa.String(length=30), nullable=True),
        sa.Column("region", sa.String(length=100), nullable=False),
        sa.Column("department", sa.String(length=5), nullable=False),
        sa.Column("requested_amount", sa.BigInteger(), nullable=False),
        sa.Column("total_budget", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=500), nullable=True),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name=op.f("fk_applications_call_id_calls")
        ),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["organisations.id"], name=op.f("fk_applications_lead_id_organisations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_applications")),
        sa.UniqueConstraint("call_id", "dedup_key", name="uq_applications_call_dedup"),
        sa.UniqueConstraint("reference", name=op.f("uq_applications_reference")),
    )
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_applications_lead_id"), ["lead_id"], unique=False)
        batch_op.create_index("ix_applications_status_id", ["status", "id"], unique=False)

    op.create_table(
        "eligibility_evaluations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("ruleset", sa.String(length=20), nullable=False),
        sa.Column("policy_digest", sa.String(length=20), nullable=False),
        sa.Column("eligible", sa.Boolean(), nullable=False),
        sa.Column("results", sa.JSON(), nullable=False),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_eligibility_evaluations_application_id_applications"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eligibility_evaluations")),
    )
    with op.batch_alter_table("eligibility_evaluations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_eligibility_evaluations_application_id"),
            ["application_id"],
            unique=False,
        )

    op.create_table(
        "status_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column(
            "from_status",
            sa.Enum(
                "submitted",
                "eligible",
                "ineligible",
                "in_review",
                "committee",
                "approved",
                "rejected",
                "active",
                "closed",
                "withdrawn",
                "cancelled",
                name="from_status",
                native_enum=False,
                create_constraint=True,
                length=20,
            ),
            nullable=True,
        ),
        sa.Column(
            "to_status",
            sa.Enum(
                "submitted",
                "eligible",
                "ineligible",
                "in_review",
                "committee",
                "approved",
                "rejected",
                "active",
                "closed",
                "withdrawn",
                "cancelled",
                name="to_status",
                native_enum=False,
                create_constraint=True,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_status_changes_application_id_applications"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_changes")),
    )
    with op.batch_alter_table("status_changes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_status_changes_application_id"), ["application_id"], unique=False
        )

    _history_is_append_only()


APPEND_ONLY_MESSAGE = "status_changes is append-only: the history cannot be changed"


def _history_is_append_only() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER status_changes_no_{verb.lower()} BEFORE {verb} ON status_changes "
                f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
            )
    else:
        op.execute(
            "CREATE FUNCTION status_changes_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{APPEND_ONLY_MESSAGE}'; END $$"
        )
        op.execute(
            "CREATE TRIGGER status_changes_append_only BEFORE UPDATE OR DELETE ON status_changes "
            "FOR EACH ROW EXECUTE FUNCTION status_changes_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS status_changes_no_update")
        op.execute("DROP TRIGGER IF EXISTS status_changes_no_delete")
    else:
        op.execute("DROP TRIGGER IF EXISTS status_changes_append_only ON status_changes")
        op.execute("DROP FUNCTION IF EXISTS status_changes_append_only()")
    with op.batch_alter_table("status_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_status_changes_application_id"))

    op.drop_table("status_changes")
    with op.batch_alter_table("eligibility_evaluations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_eligibility_evaluations_application_id"))

    op.drop_table("eligibility_evaluations")
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.drop_index("ix_applications_status_id")
        batch_op.drop_index(batch_op.f("ix_applications_lead_id"))

    op.drop_table("applications")
    op.drop_table("calls")
    op.drop_table("reference_counters")
    op.drop_table("organisations")
    op.drop_table("funds")
