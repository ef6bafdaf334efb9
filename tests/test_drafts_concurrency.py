"""Two co-applicants saving the same draft at once (issue 13): the last save wins and the
history records both, each change diffed against the document it replaced. On PostgreSQL the
second save waits for the first one's row lock; on SQLite for its BEGIN IMMEDIATE."""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy import Engine, select, text

from models import DraftChange
from odd17.services import drafts
from tests.applicant_helpers import LEAD, MEMBER, PUBLIC, uow


def _wait_for_a_lock_wait(engine: Engine) -> None:
    """Until a session of this database waits on a lock (PostgreSQL only)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            waiting = conn.scalar(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"))
        if waiting:
            return
        time.sleep(0.05)
    raise AssertionError("the second save never waited for the first one's lock")


def test_two_members_saving_at_once_both_recorded_last_wins(engine: Engine) -> None:
    with uow(engine) as u:
        draft = drafts.create_draft(u, LEAD, document={"title": "v1", "summary": "s"})
        drafts.invite(u, draft, LEAD, MEMBER, public_url=PUBLIC)
    first_saved, release = threading.Event(), threading.Event()
    results: dict[str, Any] = {}

    def lead_saves() -> None:
        with uow(engine) as u:
            results["lead"] = drafts.save_draft(u, draft, LEAD, {"title": "v2", "summary": "s"})
            first_saved.set()
            release.wait(120)

    def member_saves() -> None:
        first_saved.wait(120)
        with uow(engine) as u:
            results["member"] = drafts.save_draft(u, draft, MEMBER,
                                                  {"title": "v2", "summary": "s2"})

    threads = [threading.Thread(target=lead_saves), threading.Thread(target=member_saves)]
    for t in threads:
        t.start()
    first_saved.wait(120)
    if engine.dialect.name == "postgresql":
        _wait_for_a_lock_wait(engine)
    release.set()
    for t in threads:
        t.join(120)
    assert results == {"lead": ["title"], "member": ["summary"]}  # each against the one before
    with uow(engine) as u:
        view = drafts.load_draft(u, draft, LEAD)
        changes = u.session.scalars(select(DraftChange).order_by(DraftChange.id)).all()
    assert view["document"] == {"title": "v2", "summary": "s2"} and view["version"] == 3
    assert [(c.version, c.email, c.fields) for c in changes] == [
        (1, LEAD, ["title", "summary"]), (2, LEAD, ["title"]), (3, MEMBER, ["summary"])]
