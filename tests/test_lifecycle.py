"""The transition table, enforced on real rows; the history is append-only in the database."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import DBAPIError

from models import Application, IllegalTransition, Status, StatusChange, check_transition
from models.lifecycle import FINAL, TRANSITIONS
from odd17.db import unit_of_work
from odd17.services import intake
from tests.factories import application, runner

S = Status
DIAGRAM = {  # DESIGN.md §5, plus the two re-evaluation moves documented in models/lifecycle.py
    (S.submitted, S.eligible), (S.submitted, S.ineligible),
    (S.eligible, S.in_review), (S.in_review, S.committee), (S.committee, S.approved),
    (S.approved, S.active), (S.active, S.closed),
    (S.eligible, S.withdrawn), (S.in_review, S.withdrawn), (S.committee, S.withdrawn),
    (S.committee, S.rejected), (S.approved, S.cancelled), (S.active, S.cancelled),
    (S.eligible, S.ineligible), (S.ineligible, S.eligible),
}


def test_table_is_exactly_the_diagram() -> None:
    assert set(TRANSITIONS) == DIAGRAM
    assert {S.rejected, S.closed, S.withdrawn, S.cancelled} <= FINAL


@pytest.mark.parametrize(("src", "dst"), list(itertools.product(Status, Status)))
def test_every_pair(src: Status, dst: Status) -> None:
    if (src, dst) in DIAGRAM:
        assert check_transition(src, dst)
    else:
        with pytest.raises(IllegalTransition, match="transition interdite"):
            check_transition(src, dst, "ODD17-2026-0001")


NOW = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC)


def _submitted(engine: Engine) -> int:
    raw = intake.RawDocument("test.json", application())
    [outcome] = intake.submit_documents(runner(engine, now=NOW, actor="test"), [raw])
    with unit_of_work(engine) as session:
        return session.scalars(
            select(Application.id).where(Application.reference == outcome.reference)
        ).one()


def test_transition_appends_history(engine: Engine) -> None:
    app_id = _submitted(engine)
    with unit_of_work(engine) as session:
        app = session.get_one(Application, app_id)
        app.transition_to(S.eligible, actor="manager@fonds", at=NOW, reason="vérifié")
    with unit_of_work(engine) as session:
        app = session.get_one(Application, app_id)
        assert app.status == S.eligible
        assert [(h.from_status, h.to_status, h.actor, h.reason) for h in app.history] == [
            (None, S.submitted, "test", "dossier reçu (test.json)"),
            (S.submitted, S.eligible, "manager@fonds", "vérifié"),
        ]
        assert app.history[-1].at == NOW


def test_illegal_transition_changes_nothing(engine: Engine) -> None:
    app_id = _submitted(engine)
    with pytest.raises(IllegalTransition, match="« déposé » vers « approuvé »"), \
            unit_of_work(engine) as session:
        app = session.get_one(Application, app_id)
        app.transition_to(S.approved, actor="x", at=NOW)
    with unit_of_work(engine) as session:
        app = session.get_one(Application, app_id)
        assert app.status == S.submitted
        assert session.scalar(select(func.count()).select_from(StatusChange)) == 1


@pytest.mark.parametrize("statement", [
    "UPDATE status_changes SET reason = 'rewritten'",
    "DELETE FROM status_changes",
])
def test_history_is_append_only_in_the_database(engine: Engine, statement: str) -> None:
    _submitted(engine)
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text(statement))
    with unit_of_work(engine) as session:
        assert session.scalars(select(StatusChange.reason)).all() == ["dossier reçu (test.json)"]
