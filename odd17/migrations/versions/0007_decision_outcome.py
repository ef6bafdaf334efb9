"""decision outcome checked

Revision ID: 0007_decision_outcome
Revises: 0006_ledger_corrections
Create Date: 2026-11-23

``decisions.outcome`` becomes an enum like every other status column: still VARCHAR(10) with
the same values (stored rows and ``--json`` unchanged), now with the CHECK constraint the
others have. Decisions were only ever recorded through a check of these three values.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007_decision_outcome"
down_revision: str | None = "0006_ledger_corrections"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OUTCOMES = ("approve", "reject", "defer")
OUTCOME_RULE = "outcome IN ({})".format(", ".join(f"'{o}'" for o in OUTCOMES))


def upgrade() -> None:
    # SQLite adds a CHECK by copying the table (nothing points to decisions, no trigger on it)
    with op.batch_alter_table("decisions") as b:
        b.create_check_constraint(op.f("ck_decisions_outcome"), OUTCOME_RULE)


def downgrade() -> None:
    with op.batch_alter_table("decisions") as b:
        b.drop_constraint(op.f("ck_decisions_outcome"), type_="check")
