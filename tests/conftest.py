"""Shared fixtures.

The database backend follows ``ODD17_DATABASE_URL``: unset or SQLite, every test gets its own
SQLite file copied from a template migrated once; a PostgreSQL URL (as in CI's second pass)
is used as an admin connection, and every test gets its own database cloned from a migrated
template (``CREATE DATABASE … TEMPLATE``), so tests never see each other's rows."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

# Offline, quiet Prefect with its own home: set before anything imports prefect.
_PREFECT_HOME = tempfile.mkdtemp(prefix="odd17-prefect-")
os.environ.update({
    "PREFECT_HOME": _PREFECT_HOME,
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_LOGGING_LEVEL": "WARNING",
})
os.environ.pop("PREFECT_API_URL", None)

import pytest  # noqa: E402
from sqlalchemy import Engine, create_engine, make_url, text  # noqa: E402

from odd17.db import dispose_engines, make_engine  # noqa: E402
from odd17.services.setup import init_database  # noqa: E402
from odd17.settings import load_fund_config, reset_caches  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
EXAMPLES = SHARED / "examples"
ADMIN_URL = os.environ.get("ODD17_DATABASE_URL", "")
ON_POSTGRES = ADMIN_URL.startswith(("postgresql", "postgres"))


def _pg_url(database: str) -> str:
    url = make_url(ADMIN_URL).set(drivername="postgresql+psycopg", database=database)
    return url.render_as_string(hide_password=False)


def _admin() -> Engine:
    return create_engine(_pg_url(make_url(ADMIN_URL).database or "postgres"),
                         isolation_level="AUTOCOMMIT")


def _now():  # type: ignore[no-untyped-def]
    from odd17.runtime import utcnow

    return utcnow()


@pytest.fixture(scope="session")
def template_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database migrated to head with the default fund loaded, to clone for each test. Its
    call is open from 2020 to 2040, so that tests dated at a fixed day and tests on the real
    clock both fall inside it whenever the suite runs."""
    config = load_fund_config(None)
    wide = config.calls[0].model_copy(update={"opens_on": dt.date(2020, 1, 1),
                                              "duration_months": 240})
    config = config.model_copy(update={"calls": [wide]})
    if ON_POSTGRES:
        name = f"odd17_tpl_{uuid.uuid4().hex[:8]}"
        admin = _admin()
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine = make_engine(_pg_url(name))
        init_database(engine, config, _now())
        engine.dispose()
        yield name
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    else:
        path = tmp_path_factory.mktemp("template") / "template.db"
        engine = make_engine(f"sqlite:///{path}")
        init_database(engine, config, _now())
        engine.dispose()  # closing the last connection folds the WAL into the file
        yield str(path)


def fresh_database_url(template: str, tmp_path: Path) -> Iterator[str]:
    if ON_POSTGRES:
        name = f"odd17_t_{uuid.uuid4().hex[:12]}"
        admin = _admin()
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        yield _pg_url(name)
        dispose_engines()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    else:
        path = tmp_path / "odd17.db"
        shutil.copy(template, path)
        yield f"sqlite:///{path}"
        dispose_engines()


@pytest.fixture
def db_url(template_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh, initialised database for this test, set as ODD17_DATABASE_URL."""
    for url in fresh_database_url(template_url, tmp_path):
        monkeypatch.setenv("ODD17_DATABASE_URL", url)
        monkeypatch.delenv("ODD17_FUND_CONFIG", raising=False)
        monkeypatch.delenv("ODD17_LANGUAGE", raising=False)
        monkeypatch.chdir(tmp_path)
        reset_caches()
        yield url
    reset_caches()


@pytest.fixture
def engine(db_url: str) -> Engine:
    from odd17.db import get_engine

    return get_engine()


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """One Prefect test server for the whole session (its first start runs migrations)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture
def examples() -> Path:
    if not EXAMPLES.is_dir():
        pytest.skip(f"{EXAMPLES} is absent: the shared examples live beside the repository")
    return EXAMPLES
