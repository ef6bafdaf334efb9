"""The migrations create exactly the models' schema, and init is idempotent."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import CheckConstraint, Engine, func, inspect, select

from models import Base, Call, Fund
from odd17.db import unit_of_work
from odd17.runtime import utcnow
from odd17.services import setup
from odd17.settings import load_fund_config
from rules.tranches import add_months


def test_migrated_schema_matches_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    assert setup.current_revision(engine) == setup.head_revision()


def test_schema_head_constant_is_the_migrations_head(engine: Engine) -> None:
    """SCHEMA_HEAD spares every command Alembic's import: a new migration must move it."""
    assert setup.head_revision() == setup.SCHEMA_HEAD
    assert setup.current_revision(engine) == setup.SCHEMA_HEAD


def test_is_head_asks_alembic_when_the_constant_is_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stale SCHEMA_HEAD costs time, never a wrong answer: the real head still passes and
    anything else is refused."""
    head = setup.head_revision()
    monkeypatch.setattr(setup, "SCHEMA_HEAD", "0001_initial_schema")
    assert setup.is_head(head)
    assert not setup.is_head("0001_initial_schema_x")
    assert not setup.is_head(None)


# SQLite enforces these by triggers: adding a CHECK there means copying a table others point to
SQLITE_TRIGGERS = {"ck_tranches_paid_on_when_full", "ck_tranches_paid_within_tranche"}


def test_migrated_schema_has_every_check_of_the_models(engine: Engine) -> None:
    """compare_metadata ignores CHECK constraints: the enum columns' value lists included."""
    wanted = {(table.name, str(c.name)) for table in Base.metadata.sorted_tables
              for c in table.constraints if isinstance(c, CheckConstraint)}
    if engine.dialect.name == "sqlite":
        wanted = {(table, name) for table, name in wanted if name not in SQLITE_TRIGGERS}
    found = inspect(engine)
    missing = {(table, name) for table, name in wanted
               if name not in {c["name"] for c in found.get_check_constraints(table)}}
    assert missing == set()


def test_init_twice_keeps_one_fund_and_the_call_dates(engine: Engine) -> None:
    with unit_of_work(engine) as session:
        opens = session.scalars(select(Call.opens_on)).one()
    setup.init_database(engine, load_fund_config(None), utcnow())
    setup.init_database(engine, load_fund_config(None), utcnow())
    with unit_of_work(engine) as session:
        assert session.scalar(select(func.count()).select_from(Fund)) == 1
        assert session.scalars(select(Call.opens_on)).one() == opens


def test_call_window_is_twelve_months() -> None:
    import datetime as dt

    assert add_months(dt.date(2026, 11, 22), 12) == dt.date(2027, 11, 22)
    assert add_months(dt.date(2027, 1, 31), 1) == dt.date(2027, 2, 28)
    assert add_months(dt.date(2028, 1, 31), 1) == dt.date(2028, 2, 29)
