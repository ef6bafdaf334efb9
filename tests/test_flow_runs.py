"""Flow runs called in process (``flows.common.local_runs``): no heartbeat thread, and still
the same run history on the Prefect server, the same states and the same task retries."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import TaskRun
from prefect.settings import get_current_settings
from sqlalchemy import Engine

from flows.common import local_runs
from flows.disbursement import disbursement_flow
from flows.eligibility import eligibility_flow
from flows.intake import intake_flow
from flows.outbox import outbox_flow
from flows.review import review_flow
from odd17.services import intake
from tests.factories import numbered

pytestmark = pytest.mark.usefixtures("prefect_server")


def _task_runs(flow_run_id: Any, expected: int) -> list[TaskRun]:
    """The task runs of a flow run as the server recorded them (they reach it through its
    event stream: allow it a moment)."""
    runs = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
    tasks: list[TaskRun] = []
    with get_client(sync_client=True) as client:
        for _ in range(100):
            tasks = client.read_task_runs(flow_run_filter=runs)
            if len(tasks) >= expected and all(t.state and t.state.is_final() for t in tasks):
                break
            time.sleep(0.2)
    return tasks


def _recorded(flow_run_id: Any) -> Any:
    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id)


@pytest.mark.parametrize(("call", "name", "tasks"), [
    (lambda p: intake_flow(paths=[str(p)], return_state=True), "intake", 3),
    (lambda p: eligibility_flow(return_state=True), "eligibility", 1),
    (lambda p: review_flow(return_state=True), "review", 3),
    (lambda p: disbursement_flow(payment_files=[], as_of=dt.date(2027, 1, 1),
                                 return_state=True), "disbursement", 2),
    (lambda p: outbox_flow(return_state=True), "outbox", 1),
], ids=["intake", "eligibility", "review", "disbursement", "outbox"])
def test_every_flow_called_in_process_is_recorded(engine: Engine, tmp_path: Path, call: Any,
                                                  name: str, tasks: int) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps(numbered(1)))
    with local_runs():
        state = call(path)
    assert state.is_completed(), state
    run = _recorded(state.state_details.flow_run_id)
    assert run.state is not None and run.state.is_completed()
    assert run.name and run.flow_id
    recorded = _task_runs(run.id, tasks)
    assert len(recorded) == tasks and all(t.state and t.state.is_completed() for t in recorded)


def test_task_retries_still_happen_in_process(engine: Engine, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps(numbered(1)))
    real, calls = intake.submit_documents, {"n": 0}

    def busy_once(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("database is locked")
        return real(*args, **kwargs)

    monkeypatch.setattr(intake, "submit_documents", busy_once)
    with local_runs():
        state = intake_flow(paths=[str(path)], return_state=True)
    assert state.is_completed() and state.result()["created"] == 1
    [batch] = [t for t in _task_runs(state.state_details.flow_run_id, 2)
               if t.name.startswith("intake-batch")]
    assert batch.run_count == 2 and batch.state is not None and batch.state.is_completed()


@flow
def _heartbeat_setting() -> int | None:
    return get_current_settings().flows.heartbeat_frequency


def test_heartbeats_are_off_only_inside_local_runs() -> None:
    """In process, no heartbeat thread (Prefect 3.8 joins it at the end of each run, ~1 s);
    elsewhere, as for the deployments of `odd17 serve`, Prefect's own setting stays."""
    default = _heartbeat_setting()
    with local_runs():
        assert _heartbeat_setting() is None
    assert default is not None and default >= 30
    assert _heartbeat_setting() == default
