"""`odd17 submit` with its documents prepared in a worker process (issue 12,
odd17.services.intake_worker): the same outcomes and the same rows as in one process; a verdict
judged ahead is used only if the call and the policy it was judged with still hold; a worker
that dies loses nothing."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from models import Application, Call, EligibilityEvaluation, OutboxMessage, StatusChange
from odd17.db import make_engine, unit_of_work
from odd17.services import intake, intake_worker
from odd17.services.intake_prepare import Prepared, Snapshot, prepare_batch
from odd17.services.pipeline import submit_and_evaluate
from rules.eligibility import CallDates
from tests.conftest import fresh_database_url
from tests.factories import jsonl, numbered, runner
from tests.test_cli import ODD17, cli

NOW = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)


def _documents(tmp_path: Path) -> intake.Documents:
    """Valid, ineligible, invalid and unreadable documents, duplicates inside and across
    batches, hostile text, a call that does not exist; two files."""
    ineligible = numbered(2, requested_amount="900000.00", total_budget="2000000.00")
    hostile = numbered(5, title="<script>alert(1)</script> & « guillemets » " + "é" * 150)
    hostile["lead"] = {**hostile["lead"], "name": "[bold]Rich[/bold] <b>", "contact_name": None}
    no_title = numbered(3)
    del no_title["title"]
    unknown_call = numbered(6, call="aap-inconnu")
    docs = [numbered(1), ineligible, no_title, numbered(1), numbered(4), hostile, ineligible,
            numbered(4), unknown_call] + [numbered(10 + i) for i in range(8)]
    first = tmp_path / "a.jsonl"
    first.write_text(jsonl(docs[:9]) + "{pas du json\n", encoding="utf-8")
    second = tmp_path / "b.jsonl"
    second.write_text(jsonl([*docs[9:], numbered(1)]), encoding="utf-8")
    return intake.Documents((first, second))


def _stored(engine: Engine) -> dict[str, Any]:
    """What a submit wrote, without ids nor row order within a table."""
    with unit_of_work(engine) as s:
        ref = {i: r for i, r in s.execute(select(Application.id, Application.reference))}
        return {
            "applications": sorted(
                (a.reference, str(a.status), a.title, a.document, a.lead.identifier, a.region,
                 str(a.requested_amount), a.source, a.dedup_key)
                for a in s.scalars(select(Application))),
            "evaluations": sorted(
                (ref[e.application_id], e.eligible, json.dumps(e.results), e.policy_digest)
                for e in s.scalars(select(EligibilityEvaluation))),
            "history": sorted(
                (ref[h.application_id], str(h.from_status), str(h.to_status), h.reason)
                for h in s.scalars(select(StatusChange))),
            "outbox": sorted(
                (m.idempotency_key, m.event, m.recipient, json.dumps(m.context, sort_keys=True))
                for m in s.scalars(select(OutboxMessage))),
        }


def _run(engine: Engine, documents: intake.Documents, *, worker: bool,
         batch_size: int = 3) -> list[dict[str, Any]]:
    return [o.as_json() for o in submit_and_evaluate(
        runner(engine, now=NOW), documents, language="fr", batch_size=batch_size,
        worker=worker)]


def test_worker_gives_the_same_outcomes_and_rows(engine: Engine, template_url: str,
                                                 tmp_path: Path) -> None:
    documents = _documents(tmp_path)
    with_worker = _run(engine, documents, worker=True)
    (tmp_path / "alone").mkdir()
    for url in fresh_database_url(template_url, tmp_path / "alone"):
        alone_engine = make_engine(url)
        try:
            alone = _run(alone_engine, documents, worker=False)
            assert with_worker == alone
            assert _stored(engine) == _stored(alone_engine)
        finally:
            alone_engine.dispose()
    statuses = [o["status"] for o in with_worker]
    assert len(with_worker) == 19 and statuses.count("refused") == 3
    assert statuses.count("eligible") + statuses.count("ineligible") == 16
    assert with_worker[-1]["duplicate"] and with_worker[-1]["reference"] == \
        with_worker[0]["reference"]  # a duplicate across files and batches


def test_a_verdict_judged_ahead_is_judged_again_when_its_call_or_policy_changed(
        engine: Engine) -> None:
    """The worker judges with the calls read before; the store, under its lock, with the
    calls as they are: a call moved meanwhile (or another policy) means judging again."""
    run = runner(engine, now=NOW)
    policy = run.context.config.policy()
    real = intake.snapshot(run, policy)
    [call] = real.calls.values()
    # as read on another day, with other dates: the projects would start too late for it
    moved = CallDates(call.id, dt.date(2020, 1, 1), dt.date(2020, 12, 31))
    stale_call = Snapshot({call.id: moved}, dt.date(2020, 6, 1), policy, real.digest)
    stale_policy = Snapshot(real.calls, real.day, policy.model_copy(update={"max_amount": 1}),
                            "another")
    raws = [intake.RawDocument(f"d{i}", numbered(i)) for i in range(3)]
    ahead = [prepare_batch(raws[:1], "fr", stale_call, keep_dump=False)[0],
             prepare_batch(raws[1:2], "fr", stale_policy, keep_dump=False)[0],
             prepare_batch(raws[2:], "fr", real, keep_dump=False)[0]]
    assert all(isinstance(p, Prepared) and p.judged for p in ahead)
    judged = [p.judged for p in ahead if isinstance(p, Prepared) and p.judged]
    assert "calendrier" in [r for r, _ in judged[0].failed]  # wrong ahead, on purpose
    assert "montant" in [r for r, _ in judged[1].failed]
    assert judged[2].failed == []
    outcomes = intake._outcomes(run, list(ahead), policy=policy, language="fr")
    assert [(o.status, o.failing) for o in outcomes] == [("eligible", [])] * 3


def test_a_verdict_judged_ahead_is_used_when_it_holds(engine: Engine) -> None:
    """The results judged ahead are what is stored (not judged a second time): shown by
    handing the store results that differ from what judging would give."""
    run = runner(engine, now=NOW)
    policy = run.context.config.policy()
    real = intake.snapshot(run, policy)
    [item] = prepare_batch([intake.RawDocument("d", numbered(1))], "fr", real, keep_dump=False)
    assert isinstance(item, Prepared) and item.judged
    forged = item._replace(judged=item.judged._replace(
        failed=[("pieces", "marqueur")],
        results=json.dumps([{"rule": "pieces", "passed": False, "reason": "marqueur"}])))
    [outcome] = intake._outcomes(run, [forged], policy=policy, language="fr")
    assert (outcome.status, outcome.failing) == ("ineligible", ["pieces"])
    with unit_of_work(engine) as s:
        [results] = s.scalars(select(EligibilityEvaluation.results))
    assert results == [{"rule": "pieces", "passed": False, "reason": "marqueur"}]


def test_a_call_closed_between_the_snapshot_and_the_store_refuses(
        engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker judges with the call still open (the snapshot read before it closed); the
    store, which reads the calls under its lock, refuses every document."""
    documents = _documents(tmp_path)
    run = runner(engine, now=NOW)
    stale = intake.snapshot(run, run.context.config.policy())
    with unit_of_work(engine) as s:
        s.execute(update(Call).values(closes_on=dt.date(2026, 1, 31)))
    monkeypatch.setattr(intake, "snapshot", lambda *_: stale)
    outcomes = _run(engine, documents, worker=True)
    assert {o["status"] for o in outcomes} == {"refused"}


@pytest.mark.parametrize("dies_at", [1, 2])
def test_a_worker_that_dies_loses_nothing(engine: Engine, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch, dies_at: int) -> None:
    """The worker is killed on its first or second batch: the rest is read again and
    prepared here; every document has its outcome, in order, each stored once."""
    parent = os.getpid()
    real = intake_worker.prepare_batch
    calls = {"n": 0}

    def dying(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if os.getpid() != parent and calls["n"] == dies_at:
            os._exit(3)
        return real(*args, **kwargs)

    monkeypatch.setattr(intake_worker, "prepare_batch", dying)
    documents = _documents(tmp_path)
    outcomes = _run(engine, documents, worker=True)
    assert [o["source"] for o in outcomes] == [r.source for r in documents]
    stored = _stored(engine)
    created = [o["reference"] for o in outcomes if o["reference"] and not o["duplicate"]]
    assert sorted(created) == [a[0] for a in stored["applications"]]
    assert len(created) == len(set(created)) == 12


def test_one_batch_is_prepared_here(engine: Engine, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """No worker for documents that fit one batch (forking would cost more than it saves)."""
    def no_worker(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("no worker expected")

    monkeypatch.setattr(intake_worker, "prepared_batches", no_worker)
    outcomes = _run(engine, _documents(tmp_path), worker=True, batch_size=100)
    assert len(outcomes) == 19


def test_cli_submit_with_and_without_worker(db_url: str, tmp_path: Path) -> None:
    """`odd17 submit` uses the worker past one batch (ODD17_SUBMIT_WORKER, on by default):
    the same output either way, human and --json."""
    documents = _documents(tmp_path)
    paths = [str(p) for p in documents.paths]
    env = {"ODD17_BATCH_SIZE": "4"}
    code, out, err = cli("submit", *paths, "--json", env=env)
    assert code == 1 and "Traceback" not in err
    outcomes = json.loads(out)
    assert len(outcomes) == 19
    code, human, err = cli("submit", *paths, env=env)
    assert code == 1 and "Traceback" not in err
    code, human_alone, _ = cli("submit", *paths, env={**env, "ODD17_SUBMIT_WORKER": "false"})
    assert human == human_alone  # the second and third runs find only duplicates
    assert human.count("déjà déposé") == 16 and "3 refusé" in human


def test_documents_counts_without_parsing(tmp_path: Path) -> None:
    documents = _documents(tmp_path)
    assert documents.more_than(18) and not documents.more_than(19)
    assert dataclasses.replace(documents, paths=()).more_than(0) is False


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")  # a zombie has ended (orphans may not be reaped here)


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc (Linux)")
def test_the_worker_ends_when_submit_is_killed(db_url: str, tmp_path: Path) -> None:
    """`odd17 submit` killed outright (SIGKILL): its worker does not wait forever."""
    big = tmp_path / "big.jsonl"
    big.write_text(jsonl([numbered(i) for i in range(3000)]))
    env = {**os.environ, "ODD17_DATABASE_URL": db_url, "ODD17_BATCH_SIZE": "50"}
    proc = subprocess.Popen([ODD17, "submit", str(big), "--json"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children: list[int] = []
    deadline = time.monotonic() + 60
    while not children and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
        with contextlib.suppress(FileNotFoundError):
            children = [int(c) for c in Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
                        .read_text().split()]
    assert children, "odd17 submit started no worker"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    deadline = time.monotonic() + 10
    while any(map(_alive, children)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(map(_alive, children))


def test_counting_stops_once_past_the_batch(tmp_path: Path) -> None:
    """Deciding on a worker reads the files only until they hold more than one batch."""
    big = tmp_path / "big.jsonl"
    big.write_bytes(b"{}\n" * 2_000_000)  # 6 MB: several 1 MiB blocks
    assert intake.count_documents([big]) == 2_000_000
    assert 10 < intake.count_documents([big], stop_above=10) < 2_000_000
    assert intake.Documents((big,)).more_than(1_999_999)
    assert not intake.Documents((big,)).more_than(2_000_000)
