"""The real Prefect flows under one session-scoped test server."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from sqlalchemy import Engine, select

from flows.eligibility import eligibility_flow
from flows.intake import intake_flow
from models import Application
from odd17.db import unit_of_work
from tests.factories import jsonl, numbered

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
    outcomes = state.result()
    assert [o["status"] for o in outcomes] == ["submitted"] * 6 + ["refused", "submitted"]
    assert outcomes[-1]["duplicate"] and outcomes[-1]["reference"] == outcomes[3]["reference"]

    verdicts = eligibility_flow()
    assert sorted(v["status"] for v in verdicts) == ["eligible"] * 5 + ["ineligible"]
    assert [v["failing"] for v in verdicts if v["status"] == "ineligible"] == [["duree"]]
    assert eligibility_flow() == []  # a second run finds nothing pending

    with unit_of_work(engine) as session:
        actors = {h.actor.split(":")[0] + ":" + h.actor.split(":")[1]
                  for a in session.scalars(select(Application)) for h in a.history}
    assert actors == {"prefect:intake", "prefect:eligibility"}


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
            if len(names) == 2:
                break
            time.sleep(0.2)
    assert run.state is not None and run.state.is_completed()
    assert names == {"read-documents", "intake-batch"}


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
    changed = [v for v in eligibility_flow(reevaluate=True) if v["status"] != v["previous"]]
    assert [(v["previous"], v["status"], v["failing"]) for v in changed] == [
        ("eligible", "ineligible", ["montant"])]
