"""Declarative base and column types shared by every model."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import BigInteger, CursorResult, DateTime, MetaData, Result, Table, TypeDecorator
from sqlalchemy.orm import DeclarativeBase

from rules.money import from_cents, to_cents

# Deterministic constraint names, so Alembic migrations behave the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    # Every model here maps one Table (no joins or selects), so Core statements on
    # ``Model.__table__`` are typed as on a Table rather than DeclarativeBase's FromClause.
    __table__: ClassVar[Table]


def rows_matched(result: Result[Any]) -> int:
    """Rows an UPDATE/DELETE matched. ``Session.execute`` returns a CursorResult for DML but
    is typed as returning a plain Result, which has no ``rowcount``."""
    if not isinstance(result, CursorResult):
        raise TypeError(f"not the result of an UPDATE or DELETE: {type(result).__name__}")
    return result.rowcount


class Money(TypeDecorator[Decimal]):
    """Euros as ``Decimal`` in Python, integer cents in the database: exact on SQLite too
    (whose NUMERIC is a float) and summed without rounding on every backend."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> int | None:
        if value is None:
            return None
        return to_cents(Decimal(value))

    def process_result_value(self, value: Any, dialect: Any) -> Decimal | None:
        return None if value is None else from_cents(int(value))


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        stamp: dt.datetime = value
        if stamp.tzinfo is None:
            raise ValueError("naive datetime: odd17 stores UTC-aware timestamps only")
        return stamp.astimezone(dt.UTC)

    def process_result_value(self, value: Any, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        stamp: dt.datetime = value  # DateTime hands back datetimes, SQLite's included
        return stamp.replace(tzinfo=dt.UTC) if stamp.tzinfo is None else stamp.astimezone(dt.UTC)
