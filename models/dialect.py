"""The few statements odd17 writes differently on PostgreSQL and SQLite, decided in one place."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, Table, TextClause, bindparam, text
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from sqlalchemy.dialects.postgresql import Insert as PgInsert
    from sqlalchemy.dialects.sqlite import Insert as SqliteInsert

    DialectInsert = PgInsert | SqliteInsert


def dialect_name(bind: Session | Engine | Connection) -> str:
    """``postgresql`` or ``sqlite``: the dialect of a session, an engine or a connection."""
    engine = bind.get_bind() if isinstance(bind, Session) else bind
    return engine.dialect.name


def is_postgresql(bind: Session | Engine | Connection) -> bool:
    """PostgreSQL: row locks (FOR UPDATE) and advisory locks mean something there; SQLite's
    BEGIN IMMEDIATE already serialises writers."""
    return dialect_name(bind) == "postgresql"


def dialect_insert(session: Session, table: Any) -> DialectInsert:
    """An INSERT with the ON CONFLICT clauses (``on_conflict_do_nothing``/``_do_update``,
    ``excluded``) of the session's database, which odd17's idempotent writes use. The
    PostgreSQL dialect is imported only on PostgreSQL."""
    if is_postgresql(session):
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


@lru_cache
def insert_or_ignore(table: Table, keys: tuple[str, ...]) -> TextClause:
    """``INSERT … ON CONFLICT DO NOTHING`` of one row of ``table`` with the columns ``keys``
    (the same SQL on PostgreSQL and SQLite), as text typed with the columns' types: SQLAlchemy
    2.0 compiles its dialects' INSERT … ON CONFLICT again at every execution (their
    ``inherit_cache = False``), a large part of a committee decision's CPU for its one email
    (bench/README.md); a text statement is compiled once."""
    columns = ", ".join(f'"{key}"' for key in keys)
    values = ", ".join(f":{key}" for key in keys)
    return text(f"INSERT INTO {table.name} ({columns}) VALUES ({values}) "
                "ON CONFLICT DO NOTHING").bindparams(
        *(bindparam(key, type_=table.c[key].type) for key in keys))
