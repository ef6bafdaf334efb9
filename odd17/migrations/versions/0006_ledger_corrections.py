"""ledger corrections and partial payments

Revision ID: 0006_ledger_corrections
Revises: 0005_outbox_reliability
Create Date: 2026-11-23

- A ``correction`` entry kind reverses a top-up: ``corrects_id`` names it, UNIQUE (a top-up is
  reversed once), and a CHECK ties the kind to the column.
- Tranches take partial payments: ``paid_amount`` adds up, never beyond the tranche, and
  ``paid_on`` is set exactly when the tranche is paid in full (CHECKs on PostgreSQL, triggers
  on SQLite, where adding a CHECK means copying a table other tables point to).
  Existing payments are first re-spread over the tranches in order (an old overpayment of
  tranche 1 covers tranche 2 next, an old reduced tranche stays due for the rest); the ledger
  itself is untouched.
"""

import re
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0006_ledger_corrections"
down_revision: str | None = "0005_outbox_reliability"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_KINDS = ("commit", "disburse", "release", "topup")
NEW_KINDS = (*OLD_KINDS, "correction")
PAID_WITHIN_TRANCHE = "paid_amount IS NULL OR (paid_amount > 0 AND paid_amount <= amount)"
PAID_ON_WHEN_FULL = ("(paid_on IS NULL AND (paid_amount IS NULL OR paid_amount < amount)) "
                     "OR (paid_on IS NOT NULL AND paid_amount = amount)")
CORRECTION_NAMES_ENTRY = "(kind = 'correction') = (corrects_id IS NOT NULL)"
APPEND_ONLY_MESSAGE = "ledger_entries is append-only: correct with a new entry"
TRANCHE_RULES = {
    "paid_within_tranche": (PAID_WITHIN_TRANCHE, "tranche paid beyond its amount"),
    "paid_on_when_full": (PAID_ON_WHEN_FULL, "tranche marked paid but not paid in full"),
}


def _kind(values: tuple[str, ...]) -> sa.Enum:
    return sa.Enum(*values, name="kind", native_enum=False, create_constraint=True, length=10)


def _respread_payments() -> None:
    """Spread what each grant's tranches were paid over them in order (amounts in cents)."""
    conn = op.get_bind()
    rows = conn.execute(sa.text(
        "SELECT id, grant_id, amount, paid_amount, paid_on, payment_reference FROM tranches "
        "ORDER BY grant_id, number")).all()
    by_grant: dict[int, list[sa.Row[Any]]] = {}
    for row in rows:
        by_grant.setdefault(row.grant_id, []).append(row)
    for tranches in by_grant.values():
        left = sum(t.paid_amount or 0 for t in tranches)
        dates = [t.paid_on for t in tranches if t.paid_on is not None]
        last = max(dates) if dates else None
        for t in tranches:
            part = min(t.amount, left)
            left -= part
            paid = part or None
            paid_on = (t.paid_on or last) if part == t.amount and part > 0 else None
            if (paid, paid_on) != (t.paid_amount, t.paid_on):
                conn.execute(sa.text("UPDATE tranches SET paid_amount = :paid, paid_on = :on "
                                     "WHERE id = :id"),
                             {"paid": paid, "on": paid_on, "id": t.id})


def upgrade() -> None:
    _respread_payments()
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        for verb in ("INSERT", "UPDATE"):
            for name, (rule, message) in TRANCHE_RULES.items():
                op.execute(f"CREATE TRIGGER tranches_{name}_{verb.lower()} BEFORE {verb} ON "
                           f"tranches WHEN NOT ({_new(rule)}) "
                           f"BEGIN SELECT RAISE(ABORT, '{message}'); END")
        for verb in ("UPDATE", "DELETE"):  # the table copy below drops them
            op.execute(f"DROP TRIGGER IF EXISTS ledger_entries_no_{verb.lower()}")
    else:
        for name, (rule, _) in TRANCHE_RULES.items():
            op.create_check_constraint(op.f(f"ck_tranches_{name}"), "tranches", rule)
    with op.batch_alter_table("ledger_entries", recreate="always" if sqlite else "auto") as b:
        b.alter_column("kind", type_=_kind(NEW_KINDS), existing_type=_kind(OLD_KINDS),
                       existing_nullable=False)
        b.add_column(sa.Column("corrects_id", sa.Integer(), nullable=True))
        b.create_foreign_key(op.f("fk_ledger_entries_corrects_id_ledger_entries"),
                             "ledger_entries", ["corrects_id"], ["id"])
        b.create_unique_constraint("uq_ledger_entries_corrects_id", ["corrects_id"])
        b.create_check_constraint(op.f("ck_ledger_entries_correction_names_entry"),
                                  CORRECTION_NAMES_ENTRY)
    if sqlite:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER ledger_entries_no_{verb.lower()} BEFORE {verb} ON ledger_entries "
                f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
            )


def _new(rule: str) -> str:
    """The rule on the row being written (``NEW.column``) for a SQLite trigger."""
    return re.sub(r"\b(paid_amount|paid_on|amount)\b", r"NEW.\1", rule)


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"DROP TRIGGER IF EXISTS ledger_entries_no_{verb.lower()}")
        for verb in ("INSERT", "UPDATE"):
            for name in TRANCHE_RULES:
                op.execute(f"DROP TRIGGER IF EXISTS tranches_{name}_{verb.lower()}")
    else:
        for name in TRANCHE_RULES:
            op.drop_constraint(op.f(f"ck_tranches_{name}"), "tranches", type_="check")
    with op.batch_alter_table("ledger_entries", recreate="always" if sqlite else "auto") as b:
        b.drop_constraint(op.f("ck_ledger_entries_correction_names_entry"), type_="check")
        b.drop_constraint("uq_ledger_entries_corrects_id", type_="unique")
        b.drop_constraint(op.f("fk_ledger_entries_corrects_id_ledger_entries"),
                          type_="foreignkey")
        b.drop_column("corrects_id")
        b.alter_column("kind", type_=_kind(OLD_KINDS), existing_type=_kind(NEW_KINDS),
                       existing_nullable=False)
    if sqlite:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER ledger_entries_no_{verb.lower()} BEFORE {verb} ON ledger_entries "
                f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
            )
