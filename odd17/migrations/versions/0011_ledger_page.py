"""the ledger page: entries by date and by kind, newest first

Revision ID: 0011_ledger_page
Revises: 0010_staff
Create Date: 2026-11-23

The finance workspace's ledger (``/finances/grand-livre``, services/finance.ledger_page) lists
entries by (at, id) descending, filtered by a date range and by kind: on 10^6 entries,
PostgreSQL otherwise walks the primary key backwards past every entry outside the range
(~100 ms for a month in the middle of the ledger, against ~2 ms with the index).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011_ledger_page"
down_revision: str | None = "0010_staff"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_ledger_entries_at_id", "ledger_entries", ["at", "id"])
    op.create_index("ix_ledger_entries_kind_at_id", "ledger_entries", ["kind", "at", "id"])


def downgrade() -> None:
    op.drop_index("ix_ledger_entries_kind_at_id", table_name="ledger_entries")
    op.drop_index("ix_ledger_entries_at_id", table_name="ledger_entries")
