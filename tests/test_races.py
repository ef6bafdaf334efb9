"""Races between real processes on one database (issue 10): committee decisions, assignment,
last scores, first use of an uninitialised database, and a submit killed during eligibility.
PostgreSQL shows them (READ COMMITTED, row locks); SQLite serialises writers and must give the
same results."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, func, select, text

from models import (
    Application,
    Decision,
    EligibilityEvaluation,
    LedgerEntry,
    OutboxMessage,
    Review,
    Status,
    StatusChange,
)
from odd17.db import make_engine, unit_of_work
from odd17.services import assignment, committee, scoring
from odd17.services.audit import check as check_ledger
from odd17.services.reviewers import ReviewerIn, add_reviewer
from rules.review import ReviewPolicy
from tests.conftest import ON_POSTGRES, _admin, _pg_url
from tests.factories import eligible, in_committee, jsonl, numbered, uow_on
from tests.review_support import uow
from tests.test_review import siren

ODD17 = str(Path(sys.executable).parent / "odd17")
ROOT = Path(__file__).resolve().parent.parent
NOTES = ["pertinence=4", "alliance=5", "impact=3", "innovation=4", "modele=3"]
MEMBERS = ",".join(f"m{i}@comite.example.org" for i in range(3))
BAD = ("Traceback", "IntegrityError", "duplicate key", "psycopg", "sqlite3")


def people(engine: Engine, reviewers: int = 4) -> None:
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    with uow(engine, now=now) as u:
        for i in range(reviewers):
            add_reviewer(u, ReviewerIn(
                name=f"R{i}", email=f"r{i}@eval.example.org", siren=siren(600 + i)))
        for i in range(3):
            add_reviewer(u, ReviewerIn(
                name=f"M{i}", email=f"m{i}@comite.example.org", siren=siren(700 + i),
                committee=True, reviews=False))


def race(db_url: str, tmp_path: Path, workers: list[list[list[str]]]) -> list[list[dict]]:
    """Start one worker process per command list, release them together, return each one's
    results (see tests/race_worker.py)."""
    go = tmp_path / f"go-{uuid.uuid4().hex}"
    env = {**os.environ, "ODD17_DATABASE_URL": db_url}
    procs = []
    for i, commands in enumerate(workers):
        plan = tmp_path / f"worker{i}-{uuid.uuid4().hex}.json"
        plan.write_text(json.dumps(commands))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "tests.race_worker", str(go), str(plan)], cwd=ROOT, env=env,
            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    time.sleep(1.5)  # let every worker finish importing (not a correctness condition)
    go.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        results.append([json.loads(line) for line in out.splitlines()])
    for lines in results:
        for line in lines:
            assert not any(word in line["output"] for word in BAD), line
    return results


def audit(engine: Engine) -> list[str]:
    with unit_of_work(engine) as session:
        return check_ledger(uow_on(session))


@pytest.mark.parametrize("sides", [("--approve", "--reject"), ("--reject", "--reject")])
def test_concurrent_decisions_take_effect_once(engine: Engine, db_url: str, tmp_path: Path,
                                               sides: tuple[str, str]) -> None:
    refs = in_committee(engine, 10, requested="10000.00")
    people(engine, reviewers=0)
    workers = [[["committee", "decide", ref, side, "--present", MEMBERS, "--motif",
                 "Budget insuffisamment détaillé"] for ref in refs] for side in sides]
    results = race(db_url, tmp_path, workers)
    for _ref, mine, theirs in zip(refs, *results, strict=True):
        assert sorted((mine["code"], theirs["code"])) == [0, 2], (mine, theirs)
        loser = mine if mine["code"] else theirs
        assert "déjà décidé" in loser["output"], loser
    with unit_of_work(engine) as s:
        decisions = Counter(s.scalars(select(Decision.application_id)))
        assert sorted(decisions.values()) == [1] * 10  # the loser recorded nothing
        mails = Counter(s.scalars(select(OutboxMessage.reference).where(
            OutboxMessage.event.in_(("decision_approved", "decision_rejected")))))
        assert mails == Counter(refs)
        out_of_committee = Counter(s.scalars(
            select(Application.reference).join(StatusChange)
            .where(StatusChange.from_status == Status.committee)))
        assert out_of_committee == Counter(refs)
        statuses = Counter(s.scalars(select(Application.status)
                                     .where(Application.reference.in_(refs))))
        assert set(statuses) <= {Status.approved, Status.rejected}
    assert audit(engine) == []


APPLY_ALL = """
import json, sys, time
from pathlib import Path
from odd17.db import get_engine
from odd17.services import committee
from odd17.uow import Context, Runner
runner = Runner(get_engine(), Context.from_settings("applier"))
with runner.uow() as uow:
    pending = committee.pending_decisions(uow)  # read before the start: both try every one
go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.01)
print(json.dumps([i for i in pending if committee.apply_recorded(runner, i) is not None]))
"""


def test_two_appliers_apply_each_recorded_decision_once(engine: Engine, db_url: str,
                                                        tmp_path: Path) -> None:
    """Two appliers at once on the same pending decisions (both read them before starting):
    each decision is applied by one of them (its row's lock and ``applied_at IS NULL``), the
    other finds it applied and does nothing; one approval, one entry, one email each."""
    refs = in_committee(engine, 12, requested="10000.00")
    people(engine, reviewers=0)
    with uow(engine, now=dt.datetime(2026, 12, 2, tzinfo=dt.UTC)) as u:
        for ref in refs:
            committee.record_decision(u, ref, "approve", present=MEMBERS.split(","),
                                      amount=None, motif="")
    go = tmp_path / f"go-{uuid.uuid4().hex}"
    env = {**os.environ, "ODD17_DATABASE_URL": db_url}
    procs = [subprocess.Popen([sys.executable, "-c", APPLY_ALL, str(go)], cwd=ROOT, env=env,
                              text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]
    time.sleep(2.5)  # both read every pending decision first: without it, a weaker test
    go.touch()
    outputs = [proc.communicate(timeout=300) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    applied = [i for out, _err in outputs for i in json.loads(out)]
    with unit_of_work(engine) as s:
        assert sorted(applied) == sorted(s.scalars(select(Decision.id)))  # each once
        assert s.scalar(select(func.count()).select_from(Decision)
                        .where(Decision.applied_at.is_(None))) == 0
        keys = Counter(s.scalars(select(LedgerEntry.idempotency_key)
                                 .where(LedgerEntry.idempotency_key.like("decision:%"))))
        assert len(keys) == 12 and set(keys.values()) == {1}
        mails = Counter(s.scalars(select(OutboxMessage.reference)
                                  .where(OutboxMessage.event == "decision_approved")))
        assert mails == Counter(refs)
        moved = Counter(s.scalars(select(Application.reference).join(StatusChange)
                                  .where(StatusChange.to_status == Status.approved)))
        assert moved == Counter(refs)
    assert audit(engine) == []


def test_concurrent_assign_all(engine: Engine, db_url: str, tmp_path: Path) -> None:
    refs = eligible(engine, 16)
    people(engine)
    results = race(db_url, tmp_path, [[["review", "assign", "--all", "--json"]]] * 4)
    assigned: dict[str, list[str]] = {}
    for [line] in results:
        assert line["code"] == 0, line
        got = json.loads(line["output"])["assigned"]
        assert not set(got) & set(assigned)
        assigned.update(got)
    assert sorted(assigned) == sorted(refs)
    with unit_of_work(engine) as s:
        per_app = Counter(s.scalars(select(Review.application_id)))
        assert sorted(per_app.values()) == [2] * 16
        assert set(s.scalars(select(Application.status))) == {Status.in_review}
    assert audit(engine) == []


def test_concurrent_last_scores_move_to_committee(engine: Engine, db_url: str,
                                                  tmp_path: Path) -> None:
    """Each application's two last scores at once: this test scores one reviewer on every
    application in a transaction it keeps open while a worker process scores the other. Each
    side alone still sees a review pending; one of them must see none and move it."""
    refs = eligible(engine, 10)
    people(engine, reviewers=2)  # so both reviewers are on every application
    now = dt.datetime.now(dt.UTC)
    with uow(engine, now=now, policy=ReviewPolicy()) as u:
        assignment.assign(u)
    go, plan = tmp_path / "go", tmp_path / "plan.json"
    go.touch()
    plan.write_text(json.dumps([["review", "score", ref, *NOTES, "--reviewer",
                                 "r0@eval.example.org", "--comment", "Solide."] for ref in refs]))
    scores = {n.split("=")[0]: int(n.split("=")[1]) for n in NOTES}
    with uow(engine, now=now, policy=ReviewPolicy()) as u:
        for ref in refs:
            scoring.score(u, ref, "r1@eval.example.org", scores, "Solide.")
        worker = subprocess.Popen(
            [sys.executable, "-m", "tests.race_worker", str(go), str(plan)], cwd=ROOT,
            env={**os.environ, "ODD17_DATABASE_URL": db_url}, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # commit once the worker waits for us (or is done): its scores then overlap ours
        while worker.poll() is None and not waiting_for_lock(engine):
            time.sleep(0.05)
    out, err = worker.communicate(timeout=120)
    assert worker.returncode == 0, err
    assert [json.loads(line)["code"] for line in out.splitlines()] == [0] * 10, out
    with unit_of_work(engine) as s:
        assert set(s.scalars(select(Application.status))) == {Status.committee}
    assert audit(engine) == []


def waiting_for_lock(engine: Engine) -> bool:
    """Another connection blocked on a lock (PostgreSQL); on SQLite, after a moment."""
    if not ON_POSTGRES:
        time.sleep(2)
        return True
    with engine.connect() as conn:
        return bool(conn.scalar(text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()")))


@pytest.fixture
def blank_url(tmp_path: Path) -> Iterator[str]:
    """A database nobody has initialised."""
    if not ON_POSTGRES:
        yield f"sqlite:///{tmp_path / 'blank.db'}"
        return
    name = f"odd17_blank_{uuid.uuid4().hex[:10]}"
    admin = _admin()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield _pg_url(name)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_concurrent_first_use_initialises_once(blank_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "ODD17_DATABASE_URL": blank_url}
    files = []
    for p in range(4):
        files.append(tmp_path / f"p{p}.jsonl")
        files[-1].write_text(jsonl([numbered(100 * p + i) for i in range(3)]))
    procs = [subprocess.Popen([ODD17, "submit", str(f), "--json"], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for f in files]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, (out, err)
        assert not any(word in err for word in BAD), err
    engine = make_engine(blank_url)
    try:
        with unit_of_work(engine) as s:
            assert s.scalar(select(func.count()).select_from(Application)) == 12
            assert s.scalar(text("SELECT count(*) FROM funds")) == 1
        assert audit(engine) == []
    finally:
        engine.dispose()


def test_submit_killed_during_eligibility_is_finished_by_rerun(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    total = 2000
    big = tmp_path / "big.jsonl"
    big.write_text(jsonl([numbered(i) for i in range(total)]))
    env = {**os.environ, "ODD17_DATABASE_URL": db_url, "ODD17_BATCH_SIZE": "100"}

    # read without odd17's BEGIN IMMEDIATE, which on SQLite would queue behind the writer
    watcher = create_engine(db_url)

    def evaluated() -> int:
        with watcher.connect() as conn:
            return conn.scalar(select(func.count()).select_from(EligibilityEvaluation)) or 0

    left = []  # documents left unevaluated by each kill
    for step in (1, 300, 300):  # kill once this run has stored this many more evaluations
        before = evaluated()
        proc = subprocess.Popen([ODD17, "submit", str(big), "--json"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while proc.poll() is None and evaluated() < before + step:
            time.sleep(0.02)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
            left.append(total - evaluated())
        proc.wait(timeout=300)
    watcher.dispose()
    assert left and left[0] > 0  # the first kill did interrupt eligibility
    proc = subprocess.run([ODD17, "submit", str(big), "--json"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    outcomes = json.loads(proc.stdout)
    assert Counter(o["status"] for o in outcomes) == {"eligible": total}
    with unit_of_work(engine) as s:
        assert s.scalar(select(func.count()).select_from(Application)) == total
        per_app = Counter(s.scalars(select(EligibilityEvaluation.application_id)))
        assert len(per_app) == total and set(per_app.values()) == {1}
        assert set(s.scalars(select(Application.status))) == {Status.eligible}
        refs = sorted(s.scalars(select(Application.reference)))
    assert [int(r.rsplit("-", 1)[1]) for r in refs] == list(range(1, total + 1))
    assert audit(engine) == []
