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
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, Money, UTCDateTime
from models.lifecycle import Status, check_transition


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
        ``IllegalTransition`` and changes nothing otherwise."""
        meaning = check_transition(self.status, target, self.reference)
        change = StatusChange(
            from_status=self.status, to_status=target, actor=actor, reason=reason or meaning, at=at
        )
        self.history.append(change)
        self.status = target
        self.updated_at = at
        return change


class StatusChange(Base):
    """One line of the immutable history: who, when, from, to, why. Database triggers (see the
    first migration) refuse UPDATE and DELETE on this table."""

    __tablename__ = "status_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    from_status: Mapped[Status | None] = mapped_column(status_type("from_status"))
    to_status: Mapped[Status] = mapped_column(status_type("status"))
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
