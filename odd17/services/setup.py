"""Database creation and upgrade (Alembic) and loading the fund configuration."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, select, text

from models import Call, Fund
from models.dialect import dialect_name, is_postgresql
from odd17.db import unit_of_work
from rules.tranches import add_months

# Alembic (~0.1 s to import) is loaded only to migrate, and to check a revision that is not
# SCHEMA_HEAD: every command checks the schema, and reading one row is enough for that.
if TYPE_CHECKING:
    from alembic.config import Config

    from odd17.config import FundConfig

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
# The head of odd17/migrations/versions, kept in step by tests/test_migrations.py. Were it ever
# stale, ``is_head`` asks Alembic: slower, never wrong.
SCHEMA_HEAD = "0011_ledger_page"


def alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str | None:
    """The head of the migration scripts, as Alembic computes it."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def is_head(revision: str | None) -> bool:
    """Whether the database at ``revision`` has the schema of this code."""
    return revision is not None and (revision == SCHEMA_HEAD or revision == head_revision())


def current_revision(engine: Engine) -> str | None:
    """The revision stored in the database (``alembic_version``), None before the first
    migration. Read with one query, as Alembic's MigrationContext reads it."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(versions) > 1:  # branches: odd17's history is linear, a merge would be needed
        raise RuntimeError(f"alembic_version holds several revisions: {', '.join(versions)}")
    return versions[0] if versions else None


def is_initialised(engine: Engine) -> bool:
    return current_revision(engine) is not None


def upgrade(engine: Engine) -> None:
    from alembic import command

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
    if dialect_name(engine) == "sqlite":
        with _sqlite_file_lock(engine.url.database):
            yield
        return
    if not is_postgresql(engine):
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
    from odd17.services import ledger  # write-side code: loaded only to initialise
    from odd17.uow import Context, open_uow

    upgrade(engine)
    fund = sync_fund(engine, config, now.date(), now)
    with open_uow(engine, Context(actor="odd17 init", config=config, clock=lambda: now)) as uow:
        ledger.open_envelope(uow, fund.envelope)
    return fund
