"""models.bulk.insert_many (the batch writers' INSERT) stores exactly what
``session.execute(insert, rows)`` stores, and odd17.db.json_dumps what ``json.dumps`` means."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import (
    JSON,
    Column,
    Engine,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    insert,
    select,
    text,
)

from models.application import status_type
from models.base import Money, UTCDateTime
from models.bulk import insert_many
from models.dialect import dialect_insert
from models.lifecycle import Status
from odd17.db import json_dumps, unit_of_work

META = MetaData()
PROBE = Table(
    "bulk_probe", META,
    Column("id", Integer, primary_key=True),
    Column("batch", String(10)),
    Column("name", String(50), unique=True),
    Column("at", UTCDateTime()),
    Column("amount", Money()),
    Column("ratio", Numeric(12, 4, asdecimal=True)),
    Column("status", status_type("status")),
    Column("doc", JSON),
)
DEFAULTED = Table(
    "bulk_defaulted", META,
    Column("id", Integer, primary_key=True),
    Column("name", String(50)),
    Column("kind", String(10), default="auto"),  # a Python-side default: SQLAlchemy's path
)
COLUMNS = ("name", "at", "amount", "ratio", "status", "doc")


def _rows(batch: str) -> list[dict[str, Any]]:
    now = dt.datetime(2026, 11, 23, 20, 30, 1, 123456, tzinfo=dt.UTC)
    paris = now.astimezone(dt.timezone(dt.timedelta(hours=1)))
    one, shared = Decimal("1.0"), {"é": ["ü", 1, None, True, 1.5], "n": 2**70}
    values = [  # shared objects, equal values of other forms, None, non-ASCII, big integers
        (now, Decimal("120000.00"), one, Status.submitted, shared),
        (now, Decimal("0.01"), Decimal("1"), "eligible", shared),
        (paris, Decimal("5"), one, Status.eligible, {"k": "\u00e9\u20ac"}),
        (None, None, None, None, None),
        (now, Decimal("-3.10"), Decimal("2.5000"), Status.ineligible, [1, "x", {"y": []}]),
        (now, Decimal("7"), one, Status.submitted, 1),
        (now, Decimal("7"), one, Status.submitted, True),  # == 1, but stored as true
    ]
    return [{"batch": batch, "name": f"{batch}{i}", "at": at, "amount": amount, "ratio": ratio,
             "status": status, "doc": doc}
            for i, (at, amount, ratio, status, doc) in enumerate(values)]


@pytest.fixture
def probe(engine: Engine) -> Engine:
    META.create_all(engine)
    return engine


def _stored(engine: Engine, batch: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The rows read back through the types, and as the driver hands them (the raw storage)."""
    with unit_of_work(engine) as session:
        typed = [tuple(r[1:]) for r in session.execute(
            select(PROBE.c.name, *[PROBE.c[c] for c in COLUMNS[1:]])
            .where(PROBE.c.batch == batch).order_by(PROBE.c.id))]
        raw = [tuple(r[1:]) for r in session.execute(text(
            "SELECT name, at, amount, ratio, status, CAST(doc AS TEXT) FROM bulk_probe "
            "WHERE batch = :b ORDER BY id"), {"b": batch})]
    return typed, raw


def test_insert_many_stores_what_sqlalchemy_stores(probe: Engine) -> None:
    with unit_of_work(probe) as session:
        session.execute(insert(PROBE), _rows("a"))
        insert_many(session, insert(PROBE), _rows("b"))
    typed_a, raw_a = _stored(probe, "a")
    typed_b, raw_b = _stored(probe, "b")
    assert typed_b == typed_a and raw_b == raw_a
    assert typed_b[0][2] == Decimal("1.0") and typed_b[1][2] == Decimal("1")
    assert typed_b[2][0] == dt.datetime(2026, 11, 23, 20, 30, 1, 123456, tzinfo=dt.UTC)


def test_insert_many_converts_equal_values_each_as_given(probe: Engine) -> None:
    """Rows whose values are all equal but not the same objects (``1 == True``): each is
    converted on its own, not the first one for all."""
    now = dt.datetime(2026, 11, 23, 20, 30, tzinfo=dt.UTC)

    def rows(batch: str) -> list[dict[str, Any]]:
        return [{"batch": batch, "name": f"{batch}{i}", "at": now, "amount": Decimal(amount),
                 "ratio": Decimal(amount), "status": "eligible", "doc": doc}
                for i, (amount, doc) in enumerate([("1", 1), ("1.0", True), ("1.00", 1.0)])]

    with unit_of_work(probe) as session:
        session.execute(insert(PROBE), rows("a"))
        insert_many(session, insert(PROBE), rows("b"))
    assert _stored(probe, "b") == _stored(probe, "a")
    assert [r[-1] for r in _stored(probe, "b")[0]] == [1, True, 1.0]


def test_insert_many_keeps_on_conflict_clauses(probe: Engine) -> None:
    with unit_of_work(probe) as session:
        insert_many(session, insert(PROBE), _rows("a")[:2])
        again = [{**row, "batch": "b"} for row in _rows("a")]  # two names already stored
        insert_many(session, dialect_insert(session, PROBE).on_conflict_do_nothing(), again)
    with unit_of_work(probe) as session:
        stored = session.execute(select(PROBE.c.name, PROBE.c.batch).order_by(PROBE.c.id)).all()
    assert [tuple(r) for r in stored] == [("a0", "a"), ("a1", "a")] + [
        (f"a{i}", "b") for i in range(2, len(again))]


def test_insert_many_applies_python_side_defaults(probe: Engine) -> None:
    with unit_of_work(probe) as session:
        insert_many(session, insert(DEFAULTED), [{"name": "x"}, {"name": "y"}])
        insert_many(session, insert(DEFAULTED), [])
    with unit_of_work(probe) as session:
        stored = session.execute(select(DEFAULTED.c.name, DEFAULTED.c.kind)).all()
    assert sorted(tuple(r) for r in stored) == [("x", "auto"), ("y", "auto")]


JSONS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12)


@given(JSONS)
def test_json_dumps_means_what_json_dumps_means(value: Any) -> None:
    """Every JSON value, big integers and lone surrogates included, reads back as with the
    standard library's encoder."""
    assert json.loads(json_dumps(value)) == json.loads(json.dumps(value))


def test_json_dumps_falls_back_for_what_orjson_refuses() -> None:
    for value in ({1: "a"}, 2**80, "\ud800"):
        assert json.loads(json_dumps(value)) == json.loads(json.dumps(value))
