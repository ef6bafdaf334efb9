"""odd17.pg_cursor: PostgreSQL's cursor builds its description only when read, and then says
what psycopg's own cursor says (issue 12: ~5 % of an approval's client CPU)."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import Engine, text

from odd17.pg_cursor import Cursor, LazyDescription
from tests.conftest import ON_POSTGRES

pytestmark = pytest.mark.skipif(not ON_POSTGRES, reason="PostgreSQL's driver only: "
                                "run with ODD17_DATABASE_URL=postgresql://…")

QUERY = ("SELECT 1 AS id, 'é'::varchar(12) AS name, 2.50::numeric(10, 2) AS amount, "
         "now() AS at, NULL::boolean AS flag")


def _raw(engine: Engine) -> psycopg.Connection:
    return engine.raw_connection().driver_connection  # type: ignore[return-value]


def test_the_engine_uses_it_and_sqlalchemy_reads_rows(engine: Engine) -> None:
    with engine.connect() as conn:
        assert isinstance(conn.connection.driver_connection.cursor(), Cursor)  # type: ignore[union-attr]
        row = conn.execute(text(QUERY)).one()
        assert row._mapping["name"] == "é" and str(row.amount) == "2.50"
        assert list(conn.execute(text(QUERY)).keys()) == ["id", "name", "amount", "at", "flag"]


def test_the_description_is_psycopgs_own(engine: Engine) -> None:
    conn = _raw(engine)
    try:
        lazy, plain = Cursor(conn), psycopg.Cursor(conn)
        lazy.execute(QUERY)
        plain.execute(QUERY)
        description, expected = lazy.description, plain.description
        assert isinstance(description, LazyDescription) and expected is not None
        assert len(description) == len(expected) == 5
        assert [tuple(c) for c in description] == [tuple(c) for c in expected]
        assert [c.name for c in description[1:3]] == ["name", "amount"]
        assert description[-1].type_code == expected[-1].type_code
        for statement in ("SELECT", "CREATE TEMPORARY TABLE IF NOT EXISTS t (x int)",
                          "INSERT INTO t VALUES (1)"):
            lazy.execute(statement)
            plain.execute(statement)
            assert (None if lazy.description is None else list(lazy.description)) \
                == (None if plain.description is None else list(plain.description))
        lazy.execute("INSERT INTO t VALUES (2) RETURNING x")
        assert [c.name for c in lazy.description or []] == ["x"]
    finally:
        conn.rollback()
        conn.close()


def test_a_description_kept_past_its_result_refuses_rather_than_lie(engine: Engine) -> None:
    conn = _raw(engine)
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT 1 AS first")
        kept = cursor.description
        assert kept is not None and len(kept) == 1
        cursor.execute("SELECT 1 AS other, 2 AS columns")
        with pytest.raises(psycopg.InterfaceError, match="another statement"):
            kept[0]
        read_in_time = cursor.description
        assert read_in_time is not None and read_in_time[0].name == "other"
        cursor.execute("SELECT 3 AS again")
        assert read_in_time[1].name == "columns"  # built while its result was current
    finally:
        conn.rollback()
        conn.close()
