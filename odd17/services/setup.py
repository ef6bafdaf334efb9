"""Database creation and upgrade (Alembic) and loading the fund configuration."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, select, text

from models import Call, Fund
from odd17.db import unit_of_work
from odd17.services import ledger
from odd17.settings import FundConfig
from odd17.uow import Context, open_uow
from rules.tranches import add_months

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def is_initialised(engine: Engine) -> bool:
    return inspect(engine).has_table("alembic_version") and current_revision(engine) is not None


def upgrade(engine: Engine) -> None:
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def sync_fund(engine: Engine, config: FundConfig, today: dt.date, now: dt.datetime) -> Fund:
    """Write the configured fund and calls. The envelope is taken once, when the fund is
    created (it opens the ledger); later changes go through top-ups, never by rewriting it.
    Existing calls keep their opening date (running init again must not move a call), but take
    a changed title or duration."""
    with unit_of_work(engine) as session:
        fund = session.scalars(select(Fund).order_by(Fund.id).limit(1)).first()
        info = config.fund
        if fund is None:
            fund = Fund(created_at=now, envelope=info.envelope)
            session.add(fund)
        fund.name, fund.currency, fund.siret = info.name, info.currency, info.siret
        session.flush()
        for call_cfg in config.calls:
            call = session.get(Call, call_cfg.id)
            if call is None:
                opens = call_cfg.opens_on or today
                call = Call(id=call_cfg.id, fund_id=fund.id, opens_on=opens)
                session.add(call)
            elif call_cfg.opens_on:
                call.opens_on = call_cfg.opens_on
            call.title = call_cfg.title
            # closes_on is the last day of the window: opens + N months - 1 day
            call.closes_on = add_months(call.opens_on, call_cfg.duration_months) - dt.timedelta(1)
        return fund


# pg_advisory_lock key of initialisation ("odd17ini" read as a 64-bit integer).
INIT_LOCK = int.from_bytes(b"odd17ini", "big") - (1 << 63)


@contextmanager
def init_lock(engine: Engine) -> Iterator[None]:
    """Held while initialising: concurrent first uses of a database wait for one another
    instead of racing (on PostgreSQL: ``duplicate key … pg_type_typname_nsp_index``; on
    SQLite: a process finding the tables created but the fund not yet loaded). PostgreSQL: an
    advisory lock on its own connection, so the migration's transactions are free to commit.
    SQLite: an exclusive lock on a file beside the database (migrations and loading the fund
    are several transactions, which BEGIN IMMEDIATE alone does not keep together)."""
    if engine.dialect.name == "sqlite":
        with _sqlite_file_lock(engine.url.database):
            yield
        return
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": INIT_LOCK})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": INIT_LOCK})
            conn.commit()


@contextmanager
def _sqlite_file_lock(database: str | None) -> Iterator[None]:
    if not database or database == ":memory:":
        yield
        return
    import fcntl  # POSIX, like the machines odd17 runs on

    lock_path = Path(f"{database}.init-lock")
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed
        yield


def init_database(engine: Engine, config: FundConfig, now: dt.datetime) -> Fund:
    """Create or upgrade the schema to head, load the fund configuration and open the
    envelope (its initial amount is the ledger's first top-up). Idempotent, and safe to run
    from several processes at once (see ``init_lock``)."""
    with init_lock(engine):
        return _initialise(engine, config, now)


def ensure_initialised(engine: Engine, config: FundConfig, now: dt.datetime) -> bool:
    """Initialise a database not yet initialised (True when this call did). Checked under the
    lock, so a process arriving while another initialises waits and then finds it done."""
    with init_lock(engine):
        if is_initialised(engine):
            return False
        _initialise(engine, config, now)
        return True


def _initialise(engine: Engine, config: FundConfig, now: dt.datetime) -> Fund:
    upgrade(engine)
    fund = sync_fund(engine, config, now.date(), now)
    with open_uow(engine, Context(actor="odd17 init", config=config, clock=lambda: now)) as uow:
        ledger.open_envelope(uow, fund.envelope)
    return fund
