"""The fund, its calls for applications and the reference counters."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import Date, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Money, UTCDateTime


class Fund(Base):
    __tablename__ = "funds"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    envelope: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    siret: Mapped[str] = mapped_column(String(14))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Call(Base):
    """An appel à projets: documents are accepted only while it is open."""

    __tablename__ = "calls"

    id: Mapped[str] = mapped_column(String(50), primary_key=True)
    fund_id: Mapped[int] = mapped_column(ForeignKey("funds.id"))
    title: Mapped[str] = mapped_column(String(300))
    opens_on: Mapped[dt.date] = mapped_column(Date)
    closes_on: Mapped[dt.date] = mapped_column(Date)  # last day on which documents are accepted

    def is_open(self, day: dt.date) -> bool:
        return self.opens_on <= day <= self.closes_on


class ReferenceCounter(Base):
    """Last sequence number handed out per year. Incremented in the same transaction that
    inserts the applications, under a write lock, so references have no gaps nor duplicates."""

    __tablename__ = "reference_counters"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(Integer)
