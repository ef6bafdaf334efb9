"""Intake in one pass and as a stream (issue 12): each application stored with its verdict,
its evaluation and two history rows, nothing re-read nor updated afterwards; duplicates inside
a batch and across batches; documents read batch by batch; `submit --json` streamed byte for
byte as print_json writes it."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections import Counter
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from models import Application, EligibilityEvaluation, OutboxMessage, Status, StatusChange
from models.application import history_row
from models.errors import IllegalTransition
from odd17.cli.applications import _stream_outcomes
from odd17.db import unit_of_work
from odd17.services import intake, sources
from odd17.services.intake import Outcome
from odd17.services.pipeline import submit_and_evaluate
from tests.factories import jsonl, numbered, runner
from tests.test_cli import cli

NOW = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)


def _submit(engine: Engine, docs: list[Any], batch_size: int) -> list[Outcome]:
    raws = [intake.RawDocument(f"d{i}", d) for i, d in enumerate(docs)]
    return list(submit_and_evaluate(runner(engine, now=NOW), raws, language="fr",
                                    batch_size=batch_size))


def _rows(engine: Engine) -> tuple[Counter[int], Counter[int], list[tuple[Any, ...]]]:
    with unit_of_work(engine) as s:
        history = Counter(s.scalars(select(StatusChange.application_id)))
        evaluations = Counter(s.scalars(select(EligibilityEvaluation.application_id)))
        apps = s.execute(select(Application.id, Application.reference, Application.status,
                                Application.updated_at).order_by(Application.id)).all()
    return history, evaluations, [tuple(a) for a in apps]


@pytest.mark.parametrize("batch_size", [1, 3, 100])
def test_submit_stores_each_verdict_in_one_pass(engine: Engine, batch_size: int) -> None:
    ineligible = numbered(2, requested_amount="900000.00", total_budget="2000000.00")
    bad = numbered(3)
    del bad["title"]
    docs = [numbered(1), ineligible, bad, numbered(1), numbered(4), ineligible, numbered(4)]
    outcomes = _submit(engine, docs, batch_size)
    assert [(o.status, o.duplicate) for o in outcomes] == [
        ("eligible", False), ("ineligible", False), ("refused", False), ("eligible", True),
        ("eligible", False), ("ineligible", True), ("eligible", True)]
    # duplicates name the first copy's reference, and no failing rule (README contract)
    assert outcomes[3].reference == outcomes[0].reference
    assert outcomes[5].reference == outcomes[1].reference and outcomes[5].failing == []
    assert "montant" in outcomes[1].failing
    history, evaluations, apps = _rows(engine)
    assert [a[1] for a in apps] == [o.reference for o in outcomes if o.reference and
                                    not o.duplicate]
    assert [str(a[2]) for a in apps] == ["eligible", "ineligible", "eligible"]
    assert set(history.values()) == {2} and set(evaluations.values()) == {1}
    assert len(history) == len(evaluations) == 3
    with unit_of_work(engine) as s:
        moves: dict[int, list[tuple[Any, Any]]] = {}
        for app_id, src, dst in s.execute(select(
                StatusChange.application_id, StatusChange.from_status, StatusChange.to_status)
                .order_by(StatusChange.id)):
            moves.setdefault(app_id, []).append((src, dst))
        events = Counter(s.scalars(select(OutboxMessage.event)))
    assert [m[0] for m in moves.values()] == [(None, Status.submitted)] * 3
    assert [m[1][1] for m in moves.values()] == [Status.eligible, Status.ineligible,
                                                  Status.eligible]
    assert events == {"application_received": 3, "application_eligible": 2,
                      "application_ineligible": 1}


def test_submit_again_reports_stored_statuses(engine: Engine) -> None:
    docs = [numbered(1), numbered(2, requested_amount="900000.00")]
    first = _submit(engine, docs, 1)
    again = _submit(engine, docs, 2)
    assert [(o.reference, o.status, o.duplicate, o.failing) for o in again] == [
        (o.reference, o.status, True, []) for o in first]
    history, evaluations, _ = _rows(engine)
    assert sum(history.values()) == 4 and sum(evaluations.values()) == 2


def test_submit_judges_a_duplicate_left_pending_by_the_intake_flow(engine: Engine) -> None:
    # the intake flow stores without a policy: the application waits in ``submitted``
    [pending] = intake.submit_documents(runner(engine, now=NOW),
                                        [intake.RawDocument("flow", numbered(1))])
    assert pending.status == "submitted"
    outcomes = _submit(engine, [numbered(2), numbered(1)], 10)
    assert [(o.status, o.duplicate) for o in outcomes] == [("eligible", False),
                                                           ("eligible", True)]
    assert outcomes[1].reference == pending.reference
    history, evaluations, apps = _rows(engine)
    assert {str(a[2]) for a in apps} == {"eligible"}
    assert set(history.values()) == {2} and set(evaluations.values()) == {1}


def test_documents_are_read_batch_by_batch(engine: Engine) -> None:
    """The stream is consumed one batch ahead at most: memory follows the batch size, not
    the input (10^5 documents are never all in memory)."""
    pulled = {"n": 0}

    def raws() -> Iterator[intake.RawDocument]:
        for i in range(10):
            pulled["n"] += 1
            yield intake.RawDocument(f"d{i}", numbered(i))

    stream = submit_and_evaluate(runner(engine, now=NOW), raws(), language="fr", batch_size=3)
    seen = []
    for outcome in stream:
        seen.append(outcome)
        assert pulled["n"] <= 3 * ((len(seen) + 2) // 3)  # never past the current batch
    assert len(seen) == 10 and pulled["n"] == 10


def test_jsonl_is_read_line_by_line(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text(jsonl([numbered(1), numbered(2)]) + "not json\n")
    with path.open("rb") as stream:
        records = sources.iter_json_lines(path, stream)
        first = next(records)
        assert first.data["title"].endswith("n°1")
        assert stream.tell() < path.stat().st_size  # the rest not read yet
        rest = list(records)
    assert [r.error is None for r in rest] == [True, False]
    utf16 = tmp_path / "b.jsonl"
    utf16.write_text(jsonl([numbered(3)]) + "\r\n" + jsonl([numbered(4)]), encoding="utf-16")
    assert [r.source for r in intake.read_sources([utf16])] == [f"{utf16}:1", f"{utf16}:3"]
    assert intake.count_documents([path, utf16, tmp_path / "absent.json"]) == 3 + 4 + 1


TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)
OUTCOMES = st.builds(
    Outcome, source=TEXT, reference=st.none() | TEXT, status=TEXT,
    errors=st.lists(st.fixed_dictionaries({"field": TEXT, "message": TEXT}), max_size=2),
    duplicate=st.booleans(), failing=st.lists(TEXT, max_size=3))


@settings(max_examples=200)
@given(outcomes=st.lists(OUTCOMES, max_size=4))
def test_streamed_json_is_what_print_json_writes(outcomes: list[Outcome]) -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        refused = _stream_outcomes(iter(outcomes))
    expected = json.dumps([o.as_json() for o in outcomes], ensure_ascii=False, indent=2)
    assert out.getvalue() == expected + "\n"
    assert refused == sum(o.status == "refused" for o in outcomes)


def test_a_failing_batch_closes_the_streamed_list() -> None:
    def outcomes() -> Iterator[Outcome]:
        yield Outcome("a", "ODD17-2026-0001", "eligible")
        raise ZeroDivisionError("batch 2")

    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(ZeroDivisionError):
        _stream_outcomes(outcomes())
    assert [o["source"] for o in json.loads(out.getvalue())] == ["a"]


def test_submit_json_through_the_cli(db_url: str, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ODD17_BATCH_SIZE", "2")
    path = tmp_path / "a.jsonl"
    path.write_text(jsonl([numbered(1), numbered(2), numbered(1)]) + "{\n")
    code, out, _ = cli("submit", str(path), "--json")
    assert code == 1
    parsed = json.loads(out)
    assert out == json.dumps(parsed, ensure_ascii=False, indent=2) + "\n"
    assert [(o["status"], o["duplicate"]) for o in parsed] == [
        ("eligible", False), ("eligible", False), ("eligible", True), ("refused", False)]


def test_one_history_writer_checks_every_move() -> None:
    row = history_row(7, Status.submitted, Status.ineligible, actor="a", at=NOW,
                      detail="montant")
    assert row == {"application_id": 7, "from_status": Status.submitted,
                   "to_status": Status.ineligible, "actor": "a", "at": NOW,
                   "reason": "au moins une règle d'éligibilité n'est pas satisfaite : montant"}
    assert history_row(1, None, Status.submitted, actor="a", at=NOW)["reason"] == "dossier reçu"
    with pytest.raises(IllegalTransition):
        history_row(1, None, Status.eligible, actor="a", at=NOW)
    with pytest.raises(IllegalTransition):
        history_row(1, Status.submitted, Status.approved, actor="a", at=NOW)


def test_no_update_of_applications_at_submit(engine: Engine) -> None:
    """One pass: the application row is written once, with its final status."""
    from sqlalchemy import event

    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        _submit(engine, [numbered(i) for i in range(5)], 2)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert not [s for s in statements if s.lstrip().upper().startswith("UPDATE APPLICATIONS")]
    with unit_of_work(engine) as s:
        assert s.scalar(select(func.count()).select_from(Application)) == 5
