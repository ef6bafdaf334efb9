"""N reviewers' browsers submitting the same review at once (real processes, PostgreSQL).
The portal's submit reads the review before it locks the application (``reviewing.submit``
then ``scoring.score``), so ``scoring.score`` must read it again under the lock
(``populate_existing``): exactly one submission passes, the others are told it is already
submitted, and one review and (for the last one) one move to the committee are recorded.

The interleaving is forced, not hoped for: the test holds the application's row lock while
the workers start, so every one of them has read the review (not yet submitted) and waits on
that lock before any of them can write."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, func, select, text

from models import Application, Review, Status, StatusChange
from odd17.services import reviewing, scoring
from tests.conftest import ON_POSTGRES
from tests.review_support import uow
from tests.test_reviewing import FULL, R0, R1, assigned

pytestmark = pytest.mark.skipif(
    not ON_POSTGRES, reason="SQLite's BEGIN IMMEDIATE serialises whole transactions: the "
    "review is read after the lock there, so the race exists only on PostgreSQL")

ROOT = Path(__file__).resolve().parent.parent
WORKERS = 6


def _waiting_on_locks(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'")).scalar_one())


def submit_together(db_url: str, engine: Engine, reference: str, email: str
                    ) -> list[dict[str, str]]:
    """Start WORKERS processes submitting ``email``'s review while the application's row is
    locked here; release the lock once all of them wait on it; their answers."""
    locker = create_engine(engine.url)
    watcher = create_engine(engine.url)
    env = {**os.environ, "ODD17_DATABASE_URL": db_url}
    with locker.connect() as conn:
        conn.execute(select(Application.id).where(Application.reference == reference)
                     .with_for_update()).one()
        procs = [subprocess.Popen([sys.executable, "-m", "tests.submit_worker", reference,
                                   email], cwd=ROOT, env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for _ in range(WORKERS)]
        deadline = time.monotonic() + 120
        while _waiting_on_locks(watcher) < WORKERS:
            assert time.monotonic() < deadline, "the workers never all waited on the lock"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.05)
        conn.rollback()  # every worker has read the review unsubmitted: now they race
    answers = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        answers.append(json.loads(out))
    locker.dispose()
    watcher.dispose()
    return answers


@pytest.mark.parametrize("last", [False, True], ids=["another-pending", "the-last-review"])
def test_the_same_review_submitted_at_once_passes_once(db_url: str, engine: Engine,
                                                       last: bool) -> None:
    ref, = assigned(engine)
    with uow(engine) as u:
        if last:  # the other reviewer's is in: this submission moves it to the committee
            scoring.score(u, ref, R1, FULL, "Déjà rendue.")
        reviewing.save_draft(u, ref, R0, FULL, "Un avis complet.")
    answers = submit_together(db_url, engine, ref, R0)
    won = [a for a in answers if "ok" in a]
    refused = [a["refused"] for a in answers if "refused" in a]
    assert len(won) == 1 and len(refused) == WORKERS - 1, answers
    assert all("est déjà rendue (elle est définitive)" in r for r in refused), refused
    with uow(engine) as u:
        app = u.session.scalars(select(Application).where(Application.reference == ref)).one()
        scored = u.session.scalars(select(Review.scores).where(
            Review.application_id == app.id, Review.scored_at.is_not(None))).all()
        moves = u.session.scalar(select(func.count()).select_from(StatusChange).where(
            StatusChange.application_id == app.id, StatusChange.to_status == Status.committee))
        assert app.status == (Status.committee if last else Status.in_review)
    assert scored == [FULL] * (2 if last else 1)  # one review each, R0's recorded once
    assert moves == (1 if last else 0)
