"""PostgreSQL's pooled connections: pinged on checkout only after being idle (odd17.db
``_ping_when_idle``), and a connection the server dropped meanwhile is replaced before use."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, text

from odd17 import db
from tests.conftest import ON_POSTGRES, _admin

pytestmark = pytest.mark.skipif(
    not ON_POSTGRES, reason="PostgreSQL only: SQLite has no server to drop a connection")


def backend_pid(engine: Engine) -> int:
    with engine.begin() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def counting_pings(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    pings: list[int] = []
    real = engine.dialect.do_ping

    def ping(dbapi_connection: Any) -> bool:
        pings.append(1)
        return real(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", ping)
    return pings


def test_a_connection_in_use_a_moment_ago_is_not_pinged(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    pings = counting_pings(engine, monkeypatch)
    monkeypatch.setattr(db, "PING_IDLE_SECONDS", 3600.0)
    first = backend_pid(engine)
    assert [backend_pid(engine) for _ in range(5)] == [first] * 5
    assert pings == []  # one round trip less per transaction


def test_an_idle_connection_is_pinged(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    pings = counting_pings(engine, monkeypatch)
    backend_pid(engine)
    monkeypatch.setattr(db, "PING_IDLE_SECONDS", 0.0)
    backend_pid(engine)
    assert pings == [1]


def test_a_connection_dropped_while_idle_is_replaced_before_use(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    dropped = backend_pid(engine)
    admin = _admin()
    with admin.connect() as conn:  # as a server restart or an idle timeout would
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": dropped}).scalar()
    admin.dispose()
    monkeypatch.setattr(db, "PING_IDLE_SECONDS", 0.0)
    replaced = backend_pid(engine)  # no error: the ping found it dead, the pool reconnected
    assert replaced != dropped
