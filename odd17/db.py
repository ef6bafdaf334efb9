"""Engine and unit of work.

SQLite gets WAL, a busy timeout and ``BEGIN IMMEDIATE`` for every transaction: the driver's
deferred BEGIN takes the write lock only at the first write and then fails with "database is
locked" when two writers meet; IMMEDIATE makes the second writer wait its turn instead."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event, exc, make_url
from sqlalchemy.orm import Session

from odd17.settings import get_settings

SQLITE_BUSY_TIMEOUT_MS = 60_000
# FULL: in WAL mode, NORMAL may lose the last commits on a power loss (not on a crash); a
# ledger keeps them. Measured cost: bench/sqlite_sync.py and README, "Configuration".
SQLITE_SYNCHRONOUS = "FULL"
PING_IDLE_SECONDS = 1.0  # PostgreSQL: see _ping_when_idle


def json_dumps(value: Any) -> str:
    """The JSON columns' serializer: orjson (~4× ``json.dumps`` on the documents, evaluations
    and messages intake stores in bulk; UTF-8 rather than ``\\u`` escapes, the same JSON once
    read), and ``json.dumps`` for what orjson refuses (integers beyond 64 bits, keys that are not
    strings, lone surrogates)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(value)


def make_engine(url: str, *, sqlite_synchronous: str = SQLITE_SYNCHRONOUS) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
                               json_serializer=json_dumps)

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA synchronous={sqlite_synchronous}")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    connect_args: dict[str, Any] = {}
    if make_url(url).get_driver_name() == "psycopg":
        from odd17.pg_cursor import Cursor  # psycopg imported only for PostgreSQL

        connect_args["cursor_factory"] = Cursor
    engine = create_engine(url, json_serializer=json_dumps, connect_args=connect_args)
    _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: Engine) -> None:
    """Check a pooled connection on checkout only when it has been idle for more than
    ``PING_IDLE_SECONDS``; a dead one is replaced before use, as ``pool_pre_ping`` does. That
    option pings at every checkout: one more round trip per transaction, about 8 % of an
    approval's throughput with 8 writers (bench/ledger.py). A connection the server dropped
    (restart, idle timeout) has been idle by then; one dropped within the second after its
    last use fails one transaction, as it would with no ping (tests/test_db_ping.py)."""
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_connection: Any, record: Any) -> None:
        record.info["odd17_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("odd17_idle_since")
        if since is None or time.monotonic() - since < PING_IDLE_SECONDS:
            return  # just opened, or in use a moment ago
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:  # the pool opens another connection
            raise exc.DisconnectionError(f"connection lost while idle: {error}") from error


_ENGINES: dict[str, Engine] = {}


def engine_for(url: str) -> Engine:
    """One engine (and connection pool) per database URL for the life of the process."""
    if url not in _ENGINES:
        _ENGINES[url] = make_engine(url)
    return _ENGINES[url]


def get_engine() -> Engine:
    return engine_for(get_settings().database_url)


def dispose_engines() -> None:
    for engine in _ENGINES.values():
        engine.dispose()
    _ENGINES.clear()


@contextmanager
def unit_of_work(engine: Engine | None = None) -> Iterator[Session]:
    """One transaction: committed when the block ends normally, rolled back on any error, so
    nothing is ever half-written."""
    session = Session(bind=engine or get_engine(), expire_on_commit=False)
    try:
        with session.begin():
            yield session
    finally:
        session.close()

