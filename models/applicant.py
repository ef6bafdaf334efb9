"""The applicant's space: drafts of application documents, their co-applicants, who changed
what, and the files attached to a draft or an application."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Enum, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, UTCDateTime


class Draft(Base):
    """An application document being edited: any JSON object, valid or not, until submitted.
    ``application_id`` is set, once, by the submission that turned it into an application."""

    __tablename__ = "drafts"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id"))
    lead_email: Mapped[str] = mapped_column(String(320), index=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    # incremented by every save: a page can send back the version it showed (optional check)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    application_id: Mapped[int | None] = mapped_column(
        ForeignKey("applications.id"), unique=True)
    submitted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    members: Mapped[list[DraftMember]] = relationship(
        order_by="DraftMember.id", back_populates="draft")


class DraftMember(Base):
    """A co-applicant invited by the lead; ``accepted_at`` is their first visit."""

    __tablename__ = "draft_members"
    __table_args__ = (UniqueConstraint("draft_id", "email", name="uq_draft_members_draft_email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    draft_id: Mapped[int] = mapped_column(ForeignKey("drafts.id"), index=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    invited_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    accepted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    draft: Mapped[Draft] = relationship(back_populates="members")

    @property
    def accepted(self) -> bool:
        return self.accepted_at is not None


class DraftChange(Base):
    """Who changed which fields of a draft, when: append-only (triggers in the migration)."""

    __tablename__ = "draft_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    draft_id: Mapped[int] = mapped_column(ForeignKey("drafts.id"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer)
    fields: Mapped[list[str]] = mapped_column(JSON)  # field paths, e.g. "partners[0].siret"


class AttachmentKind(StrEnum):
    statuts = "statuts"
    budget_previsionnel = "budget_previsionnel"
    rib = "rib"
    autre = "autre"


class Attachment(Base):
    """A file attached to a draft (and, once submitted, to its application too). The bytes
    live outside the database under their SHA-256; ``filename`` is for display only."""

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    draft_id: Mapped[int | None] = mapped_column(ForeignKey("drafts.id"), index=True)
    application_id: Mapped[int | None] = mapped_column(ForeignKey("applications.id"), index=True)
    kind: Mapped[AttachmentKind] = mapped_column(Enum(
        AttachmentKind, name="kind", native_enum=False, create_constraint=True, length=30,
        values_callable=lambda e: [m.value for m in e]))
    filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(100))
    uploaded_by: Mapped[str] = mapped_column(String(320))
    uploaded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
