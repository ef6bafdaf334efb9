"""Browser tests: Debian's Chromium (Playwright's own download cannot work offline), one browser
for the session and a new context per test (pytest-playwright's ``page``), and a live server per
test: uvicorn serving ``create_app()`` in a thread, on the test's database (``db_url``), its
emails written as ``.eml`` files to a folder of the test (``live_server.mailbox``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from odd17.settings import reset_caches
from tests.web.helpers import Mailbox

CHROMIUM = Path(os.environ.get("ODD17_CHROMIUM", "/usr/bin/chromium"))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests that start Playwright run last, whatever the order asked: its sync API leaves
    an asyncio loop marked as running in the main thread until the session ends, and
    ``asyncio.run()`` (Prefect, anyio) then refuses to start in the tests after it."""
    items.sort(key=lambda item: "playwright" in getattr(item, "fixturenames", ()))


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium, or ODD17_CHROMIUM=path): "
                    "the browser tests drive Debian's Chromium, Playwright cannot download its "
                    "own browser here")
    # Chromium refuses to start as root with its sandbox (CI runs as root).
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM), "args": args}


@dataclass
class LiveServer:
    base: str
    engine: Engine
    mailbox: Mailbox

    def url(self, path: str = "/") -> str:
        return self.base + path


@pytest.fixture
def live_server(db_url: str, engine: Engine, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    """The portal on a free port of loopback, on this test's database, mailing to a folder."""
    from odd17.web.app import create_app
    from odd17.web.server import ThreadedServer

    outbox = tmp_path / "outbox"
    monkeypatch.setenv("ODD17_MAIL_TRANSPORT", "eml")
    monkeypatch.setenv("ODD17_MAIL_DIR", str(outbox))
    reset_caches()
    with ThreadedServer(create_app()) as server:
        yield LiveServer(server.url, engine, Mailbox(outbox, engine))
