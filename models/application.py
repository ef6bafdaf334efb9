"""Organisations, applications, their status history and eligibility evaluations."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Enum,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    inspect,
    select,
    update,
)
from sqlalchemy.orm import Mapped, mapped_column, object_session, relationship
from sqlalchemy.orm.attributes import set_committed_value

from models.base import Base, Money, UTCDateTime, rows_matched
from models.errors import ConcurrentChange
from models.lifecycle import Status, check_transition, lost_race


def status_type(column: str) -> Enum:
    """A status column: VARCHAR plus a CHECK constraint named after the column (PostgreSQL
    wants constraint names unique per table)."""
    return Enum(
        Status,
        name=column,
        native_enum=False,
        create_constraint=True,
        length=20,
        values_callable=lambda enum: [member.value for member in enum],
    )


class Organisation(Base):
    """A legal body known to the fund, identified by SIRET, else RNA, else email."""

    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(primary_key=True)
    identifier: Mapped[str] = mapped_column(String(300), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    siret: Mapped[str | None] = mapped_column(String(20))
    rna: Mapped[str | None] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Application(Base):
    __tablename__ = "applications"
    __table_args__ = (
        UniqueConstraint("call_id", "dedup_key", name="uq_applications_call_dedup"),
        Index("ix_applications_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(30), unique=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id"))
    lead_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    dedup_key: Mapped[str] = mapped_column(String(600))
    status: Mapped[Status] = mapped_column(status_type("status"))
    title: Mapped[str] = mapped_column(String(200))
    contact_email: Mapped[str] = mapped_column(String(320))
    primary_objective: Mapped[str | None] = mapped_column(String(30))
    region: Mapped[str] = mapped_column(String(100))
    department: Mapped[str] = mapped_column(String(5))
    requested_amount: Mapped[Decimal] = mapped_column(Money)
    total_budget: Mapped[Decimal] = mapped_column(Money)
    source: Mapped[str | None] = mapped_column(String(500))
    # The validated document as submitted (normalised JSON): the applicant's own words.
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    submitted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    lead: Mapped[Organisation] = relationship(lazy="joined")
    history: Mapped[list[StatusChange]] = relationship(
        order_by="StatusChange.id", back_populates="application"
    )
    evaluations: Mapped[list[EligibilityEvaluation]] = relationship(
        order_by="EligibilityEvaluation.id", back_populates="application"
    )

    def transition_to(
        self, target: Status, *, actor: str, at: dt.datetime, reason: str | None = None
    ) -> StatusChange:
        """Move to ``target`` if the lifecycle allows it, appending the history row; raises
        ``IllegalTransition`` and changes nothing otherwise.

        A stored application moves by compare-and-set: ``UPDATE … WHERE id AND status =
        <the status this object holds>``, checked for one row. Another process that moved it
        first (PostgreSQL's READ COMMITTED re-checks the condition once that process commits)
        makes this raise ``ConcurrentChange``, so the caller's transaction writes nothing
        else: no second decision, email or ledger move."""
        current = Status(self.status)
        meaning = check_transition(current, target, self.reference)
        change = StatusChange(
            from_status=current, to_status=target, actor=actor, reason=reason or meaning, at=at
        )
        session = object_session(self)
        if session is not None and inspect(self).persistent:
            table = Application.__table__
            moved = rows_matched(session.execute(
                update(table).where(table.c.id == self.id, table.c.status == current)
                .values(status=target, updated_at=at)
            ))
            if moved != 1:
                found = session.execute(
                    select(table.c.status).where(table.c.id == self.id)).scalar()
                raise ConcurrentChange(lost_race(self.reference, current, found))
            # the row is written: keep the object in step without a second UPDATE at flush
            set_committed_value(self, "status", target)
            set_committed_value(self, "updated_at", at)
        else:  # not stored yet: the INSERT at flush carries the new status
            self.status = target
            self.updated_at = at
        self.history.append(change)
        return change


class StatusChange(Base):
    """One line of the immutable history: who, when, from, to, why. Database triggers (see the
    first migration) refuse UPDATE and DELETE on this table."""

    __tablename__ = "status_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    from_status: Mapped[Status | None] = mapped_column(status_type("from_status"))
    to_status: Mapped[Status] = mapped_column(status_type("to_status"))
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    application: Mapped[Application] = relationship(back_populates="history")


class EligibilityEvaluation(Base):
    """One evaluation of the rule set: per-rule results kept together as a JSON list of
    ``{rule, passed, reason}`` (one row per evaluation rather than ten keeps intake fast)."""

    __tablename__ = "eligibility_evaluations"

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    ruleset: Mapped[str] = mapped_column(String(20))
    policy_digest: Mapped[str] = mapped_column(String(20))
    eligible: Mapped[bool] = mapped_column(Boolean)
    results: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    evaluated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(200))

    application: Mapped[Application] = relationship(back_populates="evaluations")

    @property
    def failing(self) -> list[dict[str, Any]]:
        return [r for r in self.results if not r["passed"]]
