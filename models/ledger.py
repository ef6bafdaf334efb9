"""The envelope ledger (README « For the finance officer »; docs/architecture.md): grants,
tranches, append-only entries and balances.

Invariants are held by the database itself, not only by the code that writes:
- every ledger entry carries the balances after it, and a CHECK refuses one where
  committed or disbursed is negative or available (envelope - committed - disbursed) is;
- the ``balances`` total row is changed only by conditional UPDATEs, and checks the same;
- per grant, CHECK disbursed + released <= awarded; per tranche, paid <= amount and marked
  paid exactly when paid in full;
- a ``correction`` reverses one ``topup``, once (UNIQUE ``corrects_id``);
- triggers (migration 0002) refuse UPDATE and DELETE on ``ledger_entries``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import NamedTuple

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.application import Application
from models.base import Base, Money, UTCDateTime
from models.errors import DomainError
from rules.money import eur
from rules.tranches import TranchePlan, split

ZERO = Decimal("0.00")


class EntryKind(StrEnum):
    commit = "commit"        # approval: available -> committed
    disburse = "disburse"    # tranche paid: committed -> disbursed
    release = "release"      # cancellation or closing with money left: committed -> available
    topup = "topup"          # the board raises the envelope
    correction = "correction"  # reverses a top-up entered by mistake: envelope -> lowered


TOTAL = "total"  # the dimension of the fund-wide balance row


class Grant(Base):
    __tablename__ = "grants"
    __table_args__ = (
        CheckConstraint("awarded > 0", name="awarded_positive"),
        CheckConstraint("disbursed >= 0 AND released >= 0", name="non_negative"),
        CheckConstraint("disbursed + released <= awarded", name="within_award"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), unique=True)
    awarded: Mapped[Decimal] = mapped_column(Money)
    disbursed: Mapped[Decimal] = mapped_column(Money)
    released: Mapped[Decimal] = mapped_column(Money)
    objective: Mapped[str] = mapped_column(String(30))  # balance dimensions, fixed at award
    region: Mapped[str] = mapped_column(String(100))
    approved_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    application: Mapped[Application] = relationship(lazy="joined")
    tranches: Mapped[list[Tranche]] = relationship(order_by="Tranche.number",
                                                    back_populates="grant")

    @property
    def outstanding(self) -> Decimal:
        """Still committed: awarded, less what was paid or released."""
        return self.awarded - self.disbursed - self.released

    def payable(self, reference: str, number: int, amount: Decimal | None) -> tuple[Tranche,
                                                                                    Decimal]:
        """The tranche ``number`` and the amount to pay on it (by default what is left), or a
        DomainError with the reason: no such tranche, paid already, an earlier one not paid
        in full (tranches are paid in order), nothing or less than ``amount`` left."""
        by_number = {t.number: t for t in self.tranches}
        tranche = by_number.get(number)
        if tranche is None:
            raise DomainError(f"{reference} : pas de tranche n°{number} (tranches 1 à "
                              f"{len(by_number)})")
        if tranche.paid_on is not None:
            raise DomainError(f"{reference} : la tranche n°{number} a déjà été versée le "
                              f"{tranche.paid_on.isoformat()} (référence "
                              f"{tranche.payment_reference})")
        unpaid_before = [t for n, t in sorted(by_number.items()) if n < number and t.left > 0]
        if unpaid_before:
            first = unpaid_before[0]
            raise DomainError(f"{reference} : la tranche n°{first.number} doit être versée "
                              f"avant la tranche n°{number} (reste {eur(first.left)} à verser)")
        left = tranche.left
        if left == 0:  # a tranche of 0,00 € (a tiny award split in shares)
            raise DomainError(f"{reference} : rien à verser sur la tranche n°{number} "
                              f"({eur(tranche.amount)})")
        amount = left if amount is None else amount
        if amount <= 0:
            raise DomainError(f"{reference} : le montant versé doit être positif")
        if amount > left:
            raise DomainError(f"{reference} : {eur(amount)} dépasse ce qui reste à verser sur "
                              f"la tranche n°{number} ({eur(left)} sur "
                              f"{eur(tranche.amount)}) ; rien n'a été enregistré")
        if amount > self.outstanding:  # pragma: no cover - tranches sum to the award
            raise DomainError(f"{reference} : {eur(amount)} dépasse ce qui reste à verser sur "
                              f"l'attribution ({eur(self.outstanding)} sur {eur(self.awarded)})")
        return tranche, amount

    def record_payment(self, tranche: Tranche, amount: Decimal, payment_reference: str,
                       paid_on: dt.date) -> None:
        """Add a payment checked by :meth:`payable`: the tranche is marked paid only once
        paid in full (a partial payment leaves it due for the rest)."""
        self.disbursed += amount
        tranche.paid_amount = (tranche.paid_amount or ZERO) + amount
        tranche.payment_reference = payment_reference  # the latest payment on the tranche
        if tranche.left == 0:
            tranche.paid_on = paid_on


class ScheduledTranche(NamedTuple):
    """A tranche of a grant about to be written (see :class:`NewGrant`)."""

    number: int
    label: str
    amount: Decimal
    due_on: dt.date


def schedule(awarded: Decimal, plan: TranchePlan, due: list[dt.date]) -> list[ScheduledTranche]:
    """The tranches of ``plan``: its shares of ``awarded`` (the cent remainder on the last,
    rules/tranches.split), due on ``due``, numbered from 1."""
    parts = split(awarded, [t.share for t in plan.tranches])
    return [ScheduledTranche(number, spec.label, part, due_on)
            for number, (spec, part, due_on) in enumerate(
                zip(plan.tranches, parts, due, strict=True), start=1)]


@dataclass(slots=True)
class NewGrant:
    """A grant an approval is writing, with its tranches, as plain values: the approval writes
    them with Core statements, and building a ``Grant`` and its ``Tranche`` objects only to
    read their attributes back cost ~5 % of an approval's CPU. ``id`` is set once written."""

    application_id: int
    awarded: Decimal
    objective: str  # balance dimensions, fixed at award
    region: str
    approved_at: dt.datetime
    tranches: list[ScheduledTranche] = field(default_factory=list)
    disbursed: Decimal = ZERO
    released: Decimal = ZERO
    id: int | None = None


PAID_WITHIN_TRANCHE = "paid_amount IS NULL OR (paid_amount > 0 AND paid_amount <= amount)"
PAID_ON_WHEN_FULL = ("(paid_on IS NULL AND (paid_amount IS NULL OR paid_amount < amount)) "
                     "OR (paid_on IS NOT NULL AND paid_amount = amount)")


class Tranche(Base):
    __tablename__ = "tranches"
    __table_args__ = (
        UniqueConstraint("grant_id", "number", name="uq_tranches_grant_number"),
        CheckConstraint("amount >= 0", name="amount_non_negative"),
        # Partial payments add up in paid_amount, never beyond the tranche; the tranche is
        # marked paid (paid_on) exactly when paid in full. SQLite: triggers (migration 0005).
        CheckConstraint(PAID_WITHIN_TRANCHE, name="paid_within_tranche"),
        CheckConstraint(PAID_ON_WHEN_FULL, name="paid_on_when_full"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    grant_id: Mapped[int] = mapped_column(ForeignKey("grants.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(100))
    amount: Mapped[Decimal] = mapped_column(Money)
    due_on: Mapped[dt.date] = mapped_column(Date)
    paid_amount: Mapped[Decimal | None] = mapped_column(Money)
    paid_on: Mapped[dt.date | None] = mapped_column(Date)
    payment_reference: Mapped[str | None] = mapped_column(String(100), unique=True)

    grant: Mapped[Grant] = relationship(back_populates="tranches")

    @property
    def left(self) -> Decimal:
        """What is still to pay (partial payments leave a tranche due for the rest)."""
        return self.amount - (self.paid_amount or ZERO)


class LedgerEntry(Base):
    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("committed_after >= 0 AND disbursed_after >= 0", name="non_negative"),
        CheckConstraint("envelope_after - committed_after - disbursed_after >= 0",
                        name="never_overcommitted"),
        # a correction names the top-up it reverses, and a top-up is reversed at most once
        CheckConstraint("(kind = 'correction') = (corrects_id IS NOT NULL)",
                        name="correction_names_entry"),
        UniqueConstraint("corrects_id", name="uq_ledger_entries_corrects_id"),
        # the finance workspace's ledger page, newest first, by date and by kind (0011)
        Index("ix_ledger_entries_at_id", "at", "id"),
        Index("ix_ledger_entries_kind_at_id", "kind", "at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    fund_id: Mapped[int] = mapped_column(ForeignKey("funds.id"))
    kind: Mapped[EntryKind] = mapped_column(Enum(
        EntryKind, name="kind", native_enum=False, create_constraint=True, length=10,
        values_callable=lambda e: [m.value for m in e]))
    amount: Mapped[Decimal] = mapped_column(Money)
    grant_id: Mapped[int | None] = mapped_column(ForeignKey("grants.id"), index=True)
    tranche_id: Mapped[int | None] = mapped_column(ForeignKey("tranches.id"))
    corrects_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.id"))
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)
    envelope_after: Mapped[Decimal] = mapped_column(Money)
    committed_after: Mapped[Decimal] = mapped_column(Money)
    disbursed_after: Mapped[Decimal] = mapped_column(Money)


class Balance(Base):
    """Running balances: the fund total (the row every ledger write locks first) and one row
    per primary objective and per region, so the finance report never sums the ledger."""

    __tablename__ = "balances"
    __table_args__ = (
        UniqueConstraint("fund_id", "dimension", "key", name="uq_balances_fund_dimension_key"),
        CheckConstraint("committed >= 0 AND disbursed >= 0", name="non_negative"),
        CheckConstraint(f"dimension <> '{TOTAL}' OR envelope - committed - disbursed >= 0",
                        name="never_overcommitted"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    fund_id: Mapped[int] = mapped_column(ForeignKey("funds.id"))
    dimension: Mapped[str] = mapped_column(String(20))  # total | objective | region
    key: Mapped[str] = mapped_column(String(100))
    envelope: Mapped[Decimal] = mapped_column(Money)    # meaningful on the total row only
    committed: Mapped[Decimal] = mapped_column(Money)
    disbursed: Mapped[Decimal] = mapped_column(Money)
    grants: Mapped[int] = mapped_column(Integer)
    alert: Mapped[bool] = mapped_column(Boolean)         # envelope alert raised (total row)

    @property
    def available(self) -> Decimal:
        return self.envelope - self.committed - self.disbursed


class LedgerDay(Base):
    """Balances at the end of each day with ledger activity: the report's history."""

    __tablename__ = "ledger_days"

    fund_id: Mapped[int] = mapped_column(ForeignKey("funds.id"), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    envelope: Mapped[Decimal] = mapped_column(Money)
    committed: Mapped[Decimal] = mapped_column(Money)
    disbursed: Mapped[Decimal] = mapped_column(Money)
