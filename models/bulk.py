"""Many rows through one INSERT statement, for the batch writers (intake, eligibility, history,
outbox).

On SQLite, ``session.execute(insert, rows)`` spends more time in SQLAlchemy's per-row parameter
handling (a dict per row, each value through its type's processor) than SQLite spends inserting:
~20 % of ``odd17 submit``'s time on 10,000 documents (cProfile, 2026-11-23). :func:`insert_many`
compiles the statement once, converts the values column by column with the same processors (once
for a column whose rows all hold the same object: the batch's ``now``, actor, status), and hands
the rows to the driver's ``executemany``, which is what SQLAlchemy ends with on SQLite. On
PostgreSQL it leaves the work to SQLAlchemy, whose "insertmanyvalues" batches rows into
multi-row VALUES there."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import repeat
from operator import is_
from typing import Any

from sqlalchemy import Insert
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

Processor = Callable[[Any], Any] | None  # SQLAlchemy's _BindProcessorType, not public


def insert_many(session: Session, statement: Insert, rows: Sequence[Mapping[str, Any]]) -> None:
    """Execute ``statement`` (an INSERT, ON CONFLICT clauses included) for each row, as
    ``session.execute(statement, rows)`` does, in the session's transaction. Every row has the
    first row's keys."""
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect
    plan = _plan(statement, tuple(rows[0]), dialect) if dialect.name == "sqlite" else None
    if plan is None:
        session.execute(statement, list(rows))
        return
    sql, binds = plan
    columns = [_column([row[key] for row in rows], processor) for key, processor in binds]
    connection.exec_driver_sql(sql, list(zip(*columns, strict=True)))


def _plan(statement: Insert, keys: tuple[str, ...], dialect: Dialect
          ) -> tuple[str, list[tuple[str, Processor]]] | None:
    """The SQL and, in parameter order, each bind's key and processor. ``None`` when the
    statement needs SQLAlchemy's per-row work: Python-side column defaults, or binds that are
    not the rows' keys."""
    compiled = statement.compile(dialect=dialect, column_keys=list(keys))
    if compiled.insert_prefetch or compiled.positiontup is None:
        return None
    binds = []
    for name in compiled.positiontup:
        bind = compiled.binds[name]
        if bind.key not in keys:
            return None
        processor: Processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
        binds.append((bind.key, processor))
    return compiled.string, binds


def _column(values: list[Any], processor: Processor) -> list[Any]:
    """``processor`` applied to each value; once when every row holds the same object (the
    ``now``, actor or status of a batch). By identity, not equality: ``Decimal("1.0") ==
    Decimal("1")`` and ``1 == True``, but each is stored as given."""
    if processor is None:
        return values
    first = values[0]
    if all(map(is_, values, repeat(first))):
        return [processor(first)] * len(values)
    return [processor(v) for v in values]
