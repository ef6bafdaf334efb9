"""Hypothesis fuzz of documents: intake never raises, and a document is either stored whole
(application, lead, history and, after eligibility, one evaluation) or not at all."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from models import Application, EligibilityEvaluation, StatusChange
from odd17.db import unit_of_work
from odd17.services import intake
from rules.eligibility import EligibilityPolicy
from tests.factories import VALID, evaluate_all, make_siret, runner

NOW = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=30) | st.sampled_from(["", "20", "2A", "971", "W123456789",
                                             "52601815590833", "1e3", "10.001", "-1"]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
FIELDS = sorted(VALID)


@st.composite
def mutated_documents(draw: st.DrawFn) -> Any:
    doc: Any = json.loads(json.dumps(VALID))
    for _ in range(draw(st.integers(0, 4))):
        action = draw(st.sampled_from(["drop", "replace", "add", "nested"]))
        key = draw(st.sampled_from(FIELDS))
        if action == "drop":
            doc.pop(key, None)
        elif action == "replace":
            doc[key] = draw(json_values)
        elif action == "add":
            doc[draw(st.text(min_size=1, max_size=8))] = draw(json_values)
        elif isinstance(doc.get(key), dict):
            doc[key][draw(st.sampled_from(sorted(doc[key]) or ["x"]))] = draw(json_values)
    if draw(st.booleans()):
        doc["title"] = draw(st.text(min_size=0, max_size=250))
    if isinstance(doc.get("lead"), dict) and draw(st.integers(0, 3)):
        doc["lead"]["siret"] = make_siret(draw(st.integers(0, 10**9)))  # a new lead
    return doc if draw(st.integers(0, 20)) else draw(json_values)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(docs=st.lists(mutated_documents(), min_size=1, max_size=5))
def test_fuzzed_documents_never_raise_and_never_half_write(engine: Engine,
                                                          docs: list[Any]) -> None:
    with unit_of_work(engine) as session:
        before = session.scalar(select(func.count()).select_from(Application)) or 0
    raws = [intake.RawDocument(f"fuzz{i}", d) for i, d in enumerate(docs)]
    outcomes = intake.submit_documents(runner(engine, now=NOW, actor="fuzz"), raws)
    assert len(outcomes) == len(docs)
    for outcome in outcomes:
        event(f"outcome: {outcome.status}")
        if outcome.status == "refused":
            assert outcome.reference is None and outcome.errors
            assert all(e["field"] and e["message"] for e in outcome.errors)
        else:
            assert outcome.reference and not outcome.errors
    evaluate_all(engine, EligibilityPolicy(), now=NOW, actor="fuzz")
    new = {o.reference for o in outcomes if o.reference and not o.duplicate}
    with unit_of_work(engine) as session:
        after = session.scalar(select(func.count()).select_from(Application)) or 0
        assert after - before == len(new)
        apps = session.scalars(select(Application)).all()
        for app in apps:  # every stored application is whole
            assert next(h.to_status.value for h in app.history) == "submitted"
            assert len(app.history) == 2 and app.status.value in ("eligible", "ineligible")
        assert session.scalar(select(func.count()).select_from(EligibilityEvaluation)) == after
        assert session.scalar(select(func.count()).select_from(StatusChange)) == 2 * after
