"""PostgreSQL: a psycopg cursor whose ``description`` builds its columns only when read.

SQLAlchemy asks for ``cursor.description`` after every statement, to learn whether it returned
rows. psycopg 3 answers with a new ``Column`` object per column each time (a Python object
that decodes the name and looks the type up: psycopg issue #446), while SQLAlchemy reads the
columns only the first time it runs a statement and keeps what it learnt. An approval (its
read of the application has 25 columns) spent 949–963 µs of client CPU with psycopg's cursor,
897–916 µs with this one (bench/README.md). Installed by ``odd17.db.make_engine``
(``cursor_factory``, the driver's documented hook)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, overload

import psycopg
from psycopg import Column
from psycopg.pq import ExecStatus

_ROWS = (ExecStatus.TUPLES_OK, ExecStatus.SINGLE_TUPLE, ExecStatus.TUPLES_CHUNK)
_DESCRIPTION = psycopg.Cursor.description  # the driver's own property


class LazyDescription(Sequence[Column]):
    """The description of one result: its length without building anything, its columns
    built by the driver on first access to one of them. Read while the cursor still holds
    that result (SQLAlchemy reads it at once); afterwards it refuses rather than describe
    another result."""

    __slots__ = ("_columns", "_cursor", "_result")

    def __init__(self, cursor: psycopg.Cursor[Any], result: Any) -> None:
        self._cursor, self._result = cursor, result
        self._columns: list[Column] | None = None

    def __len__(self) -> int:
        return int(self._result.nfields)

    @overload
    def __getitem__(self, index: int) -> Column: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Column]: ...

    def __getitem__(self, index: int | slice) -> Column | Sequence[Column]:
        if self._columns is None:
            if self._cursor.pgresult is not self._result:
                raise psycopg.InterfaceError(
                    "description read after its cursor ran another statement")
            self._columns = _DESCRIPTION.fget(self._cursor) or []  # type: ignore[attr-defined]
        return self._columns[index]

    def __repr__(self) -> str:
        return repr(list(self))


class Cursor(psycopg.Cursor[Any]):
    """psycopg's cursor with :class:`LazyDescription` (``None`` in the same cases)."""

    @property
    def description(self) -> LazyDescription | None:  # type: ignore[override]
        result = self.pgresult
        if result and (result.nfields or result.status in _ROWS):
            return LazyDescription(self, result)
        return None
