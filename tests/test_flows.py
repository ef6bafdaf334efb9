"""The real Prefect flows under one session-scoped test server."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from sqlalchemy import Engine, select

from flows.eligibility import eligibility_flow
from flows.intake import intake_flow
from models import Application
from odd17.db import unit_of_work
from tests.factories import dies_on_call, jsonl, numbered

pytestmark = pytest.mark.usefixtures("prefect_server")


def test_intake_then_eligibility_flows(engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "depot"
    folder.mkdir()
    (folder / "batch.jsonl").write_text(
        jsonl([numbered(i) for i in range(5)] + [numbered(9, duration_months=60)])
        + '{"title": "cassé"\n'
    )
    (folder / "single.json").write_text(json.dumps(numbered(3)))  # a duplicate of line 4

    state = intake_flow(paths=[str(folder)], return_state=True)
    assert state.is_completed()
    summary = state.result()
    assert summary["received"] == 8 and summary["created"] == 6 and summary["duplicates"] == 1
    year = dt.datetime.now(dt.UTC).year
    assert (summary["first_reference"], summary["last_reference"]) == (
        f"ODD17-{year}-0001", f"ODD17-{year}-0006")
    [refusal] = summary["refused"]
    assert refusal["source"].endswith("batch.jsonl:7")
    assert refusal["errors"][0]["field"] == "(document)"
    # judged in the pass that stored them, as by `odd17 submit`
    assert (summary["eligible"], summary["ineligible"]) == (5, 1)
    assert summary["failing_by_rule"] == {"duree": 1}

    assert summary["pending"] == 0  # nothing left for the eligibility flow: no need to start it
    assert eligibility_flow()["evaluated"] == 0

    with unit_of_work(engine) as session:
        apps = list(session.scalars(select(Application)))
        assert sorted(str(a.status) for a in apps) == ["eligible"] * 5 + ["ineligible"]
        assert all(len(a.evaluations) == 1 for a in apps)
        history = [(h.from_status, str(h.to_status)) for a in apps for h in a.history]
        actors = {h.actor.split(":")[0] + ":" + h.actor.split(":")[1]
                  for a in apps for h in a.history}
    assert sorted(history, key=str) == sorted(
        [(None, "submitted")] * 6 + [("submitted", "eligible")] * 5
        + [("submitted", "ineligible")], key=str)
    assert actors == {"prefect:intake"}


def stored_unjudged(engine: Engine, path: Path) -> list[str]:
    """Store the documents of ``path`` without judging them (as an interrupted run or an
    older intake flow leaves them: ``submitted``); their references."""
    from odd17.services import intake
    from tests.factories import runner

    outcomes = intake.submit_documents(runner(engine), intake.read_sources([path]))
    assert {o.status for o in outcomes} == {"submitted"}
    return [o.reference or "" for o in outcomes]


def test_flow_runs_are_recorded_by_the_server(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps(numbered(1)))
    state = intake_flow(paths=[str(path)], return_state=True)
    flow_run_id = state.state_details.flow_run_id
    runs = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
    names: set[str] = set()
    with get_client(sync_client=True) as client:
        [run] = client.read_flow_runs(flow_run_filter=runs)
        # task runs reach the server through its event stream: allow it a moment
        for _ in range(50):
            names = {t.name.rsplit("-", 1)[0] for t in client.read_task_runs(flow_run_filter=runs)}
            if len(names) == 3:
                break
            time.sleep(0.2)
    assert run.state is not None and run.state.is_completed()
    assert names == {"read-documents", "intake-batch", "count-pending"}


def test_eligibility_run_killed_midway_is_completed_by_the_next(engine: Engine,
                                                                 tmp_path: Path,
                                                                 monkeypatch) -> None:
    """Batches commit one by one: a run that dies after the first batch loses nothing, and
    the next run evaluates exactly what is left."""
    from odd17.services import eligibility
    from odd17.settings import reset_caches

    monkeypatch.setenv("ODD17_BATCH_SIZE", "3")
    reset_caches()
    path = tmp_path / "a.jsonl"
    path.write_text(jsonl([numbered(i) for i in range(8)]))
    stored_unjudged(engine, path)
    real = eligibility.evaluate_next
    monkeypatch.setattr(eligibility, "evaluate_next", dies_on_call(2, real, "process killed"))
    with pytest.raises(BaseException, match="process killed"):
        eligibility_flow()
    monkeypatch.setattr(eligibility, "evaluate_next", real)
    with unit_of_work(engine) as session:
        statuses = sorted(str(s) for s in session.scalars(select(Application.status)))
    assert statuses == ["eligible"] * 3 + ["submitted"] * 5
    summary = eligibility_flow()
    assert summary["evaluated"] == 5 and summary["eligible"] == 5


def test_reevaluation_flow(engine: Engine, monkeypatch: pytest.MonkeyPatch,
                           tmp_path: Path) -> None:
    from odd17.settings import reset_caches

    path = tmp_path / "a.jsonl"
    path.write_text(jsonl([numbered(1, requested_amount="150000"), numbered(2)]))
    intake_flow(paths=[str(path)])
    eligibility_flow()
    default = (Path(__file__).parent.parent / "odd17/data/fund.toml").read_text()
    config = tmp_path / "fund.toml"
    config.write_text(default.replace('max_amount = "200000.00"', 'max_amount = "130000.00"'))
    monkeypatch.setenv("ODD17_FUND_CONFIG", str(config))
    reset_caches()
    summary = eligibility_flow(reevaluate=True)
    assert summary["evaluated"] == 2
    assert [(v["previous"], v["status"], v["failing"]) for v in summary["changed"]] == [
        ("eligible", "ineligible", ["montant"])]


def test_reevaluate_applies_to_named_applications(engine: Engine, tmp_path: Path) -> None:
    """``references`` with ``reevaluate=False`` evaluates only those still pending; with
    ``reevaluate=True`` those already judged too (the flag used to be ignored with names)."""
    path = tmp_path / "a.jsonl"
    path.write_text(jsonl([numbered(1), numbered(2)]))
    first, second = stored_unjudged(engine, path)
    assert eligibility_flow(references=[first])["evaluated"] == 1
    assert eligibility_flow(references=[first, second])["evaluated"] == 1  # only the pending
    assert eligibility_flow(references=[first], reevaluate=True)["evaluated"] == 1
    with unit_of_work(engine) as session:
        assert set(session.scalars(select(Application.status))) == {"eligible"}


def test_intake_flow_reports_what_an_older_run_left_pending(engine: Engine,
                                                            tmp_path: Path) -> None:
    """``pending`` tells the caller whether an eligibility run is needed: the applications an
    older run left in ``submitted``, not those this run judged."""
    older = tmp_path / "older.jsonl"
    older.write_text(jsonl([numbered(1), numbered(2)]))
    stored_unjudged(engine, older)
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps(numbered(3)))
    summary = intake_flow(paths=[str(newer)])
    assert (summary["created"], summary["eligible"], summary["pending"]) == (1, 1, 2)
    assert eligibility_flow()["evaluated"] == 2
    assert intake_flow(paths=[str(newer)])["pending"] == 0


def test_read_documents_result_is_not_walked_document_by_document(tmp_path: Path) -> None:
    """Prefect links a task's result to its state one level deep, element by element (~0.2 s
    for 10^4 documents): the documents come back as one opaque value."""
    from prefect import flow
    from prefect.context import FlowRunContext

    from flows.intake import read_documents

    path = tmp_path / "a.jsonl"
    path.write_text(jsonl([numbered(i) for i in range(20)]))

    @flow
    def reads() -> tuple[int, int]:
        raws: list[Any] = read_documents([str(path)], "fr").unwrap()
        context = FlowRunContext.get()
        assert context is not None
        return len(raws), sum(id(raw) in context.run_results for raw in raws)

    assert reads() == (20, 0)
