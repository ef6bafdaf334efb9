"""Committee review (README, « Committee review »): reviewers, their reviews, recusals and
decisions."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, Enum, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, Money, UTCDateTime


class Reviewer(Base):
    """A reviewer (scores applications) and/or a committee member (votes on decisions)."""

    __tablename__ = "reviewers"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    siren: Mapped[str | None] = mapped_column(String(9))
    interests: Mapped[list[str]] = mapped_column(JSON)  # declared SIRENs
    reviews: Mapped[bool] = mapped_column(Boolean)      # may be assigned applications
    committee: Mapped[bool] = mapped_column(Boolean)    # member of the committee
    active: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Review(Base):
    """An assignment, and once scored, the scores (integers per criterion), the weighted
    score in thousandths and the comment."""

    __tablename__ = "reviews"
    __table_args__ = (UniqueConstraint("application_id", "reviewer_id",
                                       name="uq_reviews_application_reviewer"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("reviewers.id"), index=True)
    assigned_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    scores: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    weighted_milli: Mapped[int | None] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    scored_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # saved but not submitted (the reviewer finishes later): partial notes, comment, when
    draft_scores: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    draft_comment: Mapped[str | None] = mapped_column(Text)
    draft_saved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    reviewer: Mapped[Reviewer] = relationship(lazy="joined")


class Recusal(Base):
    """A reviewer or committee member set aside from an application, and why."""

    __tablename__ = "recusals"
    __table_args__ = (UniqueConstraint("application_id", "reviewer_id",
                                       name="uq_recusals_application_reviewer"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("reviewers.id"))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    reviewer: Mapped[Reviewer] = relationship(lazy="joined")


class DecisionOutcome(StrEnum):
    approve = "approve"   # reserves the amount through the ledger
    reject = "reject"     # moves the application to rejected (a motif is required)
    defer = "defer"       # keeps it before the committee


class Decision(Base):
    """A committee decision: recorded first, then applied (approval through the ledger). A run
    that dies in between leaves it pending; the next review flow run applies it."""

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    outcome: Mapped[DecisionOutcome] = mapped_column(Enum(
        DecisionOutcome, name="outcome", native_enum=False, create_constraint=True, length=10,
        values_callable=lambda e: [m.value for m in e]))
    amount: Mapped[Decimal | None] = mapped_column(Money)
    motif: Mapped[str | None] = mapped_column(Text)
    present: Mapped[list[str]] = mapped_column(JSON)    # members present and not recused
    recused: Mapped[list[str]] = mapped_column(JSON)    # members present but recused
    recorded_by: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    applied_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
