"""outbox reliability

Revision ID: 0005_outbox_reliability
Revises: 0004
Create Date: 2026-11-23

One message in flight per dispatcher: when its send began and its Message-ID; when a person
requeued it (the queue lifetime starts again).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_outbox_reliability"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("send_started_at", sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column("message_id", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("requeued_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("requeued_at")
        batch_op.drop_column("message_id")
        batch_op.drop_column("send_started_at")
