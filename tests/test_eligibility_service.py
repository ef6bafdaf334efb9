"""Eligibility stored per rule with the rule-set version; re-evaluation after a policy change."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import Engine, select, update

from models import Application, Call, ConcurrentChange, EligibilityEvaluation, Status
from odd17.db import unit_of_work
from odd17.services import eligibility, intake, queries
from rules.eligibility import RULE_IDS, EligibilityPolicy
from tests.factories import application, evaluate_all, numbered, runner, uow_on

NOW = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)
POLICY = EligibilityPolicy()


def store(engine: Engine, *docs: dict) -> list[str]:
    raws = [intake.RawDocument(f"d{i}", d) for i, d in enumerate(docs)]
    return [o.reference for o in intake.submit_documents(runner(engine, now=NOW), raws)]


def run(engine: Engine, policy: EligibilityPolicy = POLICY, reevaluate: bool = False):
    return evaluate_all(engine, policy, now=NOW, reevaluate=reevaluate)


def test_results_stored_per_rule_with_version(engine: Engine) -> None:
    ok, ko = store(engine, numbered(1), numbered(2, duration_months=48, documents=[]))
    verdicts = {v.reference: v for v in run(engine)}
    assert verdicts[ok].status == "eligible" and verdicts[ok].failing == []
    assert verdicts[ko].status == "ineligible" and verdicts[ko].failing == ["duree", "pieces"]
    with unit_of_work(engine) as session:
        detail = queries.application_detail(uow_on(session), ko)
        evaluation = session.scalars(select(EligibilityEvaluation)).first()
        assert evaluation is not None
        assert evaluation.ruleset == "v2" and evaluation.policy_digest == POLICY.digest()
    assert [r["rule"] for r in detail["eligibility"]] == list(RULE_IDS)
    failing = [r for r in detail["eligibility"] if not r["passed"]]
    assert [r["rule"] for r in failing] == ["duree", "pieces"]
    assert "48 mois" in failing[0]["reason"]
    assert detail["history"][-1]["reason"].endswith(": duree, pieces")
    assert run(engine) == []  # nothing pending any more


def test_reevaluation_after_policy_change_moves_both_ways(engine: Engine) -> None:
    big, small = store(engine, numbered(1, requested_amount="190000", total_budget="400000"),
                       numbered(2, requested_amount="6000", total_budget="10000"))
    run(engine)
    stricter = POLICY.model_copy(update={"max_amount": Decimal("150000"),
                                         "min_amount": Decimal("1000")})
    assert {v.reference: v.status for v in run(engine, stricter, reevaluate=True)} == {
        big: "ineligible", small: "eligible"}
    back = {v.reference: (v.previous, v.status) for v in run(engine, POLICY, reevaluate=True)}
    assert back[big] == ("ineligible", "eligible")
    with unit_of_work(engine) as session:
        detail = queries.application_detail(uow_on(session), big)
    assert [h["to"] for h in detail["history"]] == ["submitted", "eligible", "ineligible",
                                                    "eligible"]
    assert detail["eligibility_policy"] == POLICY.digest()


def test_applications_in_review_are_never_reevaluated(engine: Engine) -> None:
    [ref] = store(engine, application())
    run(engine)
    with unit_of_work(engine) as session:
        app = session.scalars(select(Application)).one()
        app.transition_to(Status.in_review, actor="t", at=NOW)
    strict = POLICY.model_copy(update={"max_amount": Decimal("10000")})
    assert run(engine, strict, reevaluate=True) == []
    with unit_of_work(engine) as session:
        assert queries.application_detail(uow_on(session), ref)["status"] == "in_review"


def test_status_changed_since_the_read_rolls_the_batch_back(engine: Engine) -> None:
    store(engine, numbered(1), numbered(2))
    with runner(engine, now=NOW).uow() as uow:
        ids = eligibility.candidate_ids(uow)
    with unit_of_work(engine) as session:
        rows = session.execute(
            select(*eligibility.ROW_COLUMNS).join(Call, Call.id == Application.call_id)
            .order_by(Application.id)
        ).all()
    planned = eligibility.plan(rows, POLICY, now=NOW, actor="t")
    with unit_of_work(engine) as session:  # another writer gets there first
        session.execute(update(Application).where(Application.id == ids[1])
                        .values(status=Status.eligible))
    with pytest.raises(ConcurrentChange), unit_of_work(engine) as session:
        eligibility.apply(session, planned)
    with unit_of_work(engine) as session:
        assert session.scalars(select(EligibilityEvaluation)).all() == []
        assert list(session.scalars(select(Application.status).order_by(Application.id))) == [
            Status.submitted, Status.eligible]


@pytest.mark.parametrize(("start", "ok"), [("9999-12-31", False), ("0001-01-01", False),
                                           ("2027-03-01", True)])
def test_start_date_is_judged_against_the_call_of_the_application(
        engine: Engine, start: str, ok: bool) -> None:
    [ref] = store(engine, application(start_date=start))
    [verdict] = run(engine)
    assert (verdict.status == "eligible") is ok
    assert verdict.failing == ([] if ok else ["calendrier"])
    with unit_of_work(engine) as session:
        detail = queries.application_detail(uow_on(session), ref)
        call = session.get(Call, detail["call"])
        assert call is not None
    [reason] = [r["reason"] for r in detail["eligibility"] if r["rule"] == "calendrier"]
    assert start in reason and (ok or call.id in reason)
