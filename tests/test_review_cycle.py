"""From eligible to approved and rejected, through the CLI and through the review flow, with
conflicted reviewers and committee members excluded at every step."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from alembic import command
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError

from flows.review import review_flow
from models import Application, Decision, DecisionOutcome, DomainError
from odd17.db import unit_of_work
from odd17.services import audit, committee, ledger, reviewers, scoring, setup
from rules.tranches import DEFAULT_PLAN
from tests.factories import as_uow, dies_on_call, eligible, in_committee, uow_on
from tests.review_support import uow
from tests.test_cli import cli
from tests.test_review import PARTNER, siren

NOTES = ["pertinence=4", "alliance=5", "impact=3", "innovation=4", "modele=3"]


def people(engine: Engine) -> None:
    """4 reviewers, 1 conflicted reviewer, 5 committee members of whom 1 is conflicted."""
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    with uow(engine, now=now) as u:
        for i in range(4):
            reviewers.add_reviewer(u, reviewers.ReviewerIn(
                name=f"R{i}", email=f"r{i}@eval.example.org", siren=siren(600 + i)))
        reviewers.add_reviewer(u, reviewers.ReviewerIn(
            name="Conflit", email="conflit@eval.example.org", siren=PARTNER))
        for i in range(5):
            reviewers.add_reviewer(u, reviewers.ReviewerIn(
                name=f"M{i}", email=f"m{i}@comite.example.org", siren=siren(700 + i),
                interests=[PARTNER] if i == 4 else [], committee=True, reviews=False))


def test_cli_cycle_to_approved_and_rejected(engine: Engine) -> None:
    a, b = eligible(engine, 2)
    people(engine)
    code, out, _ = cli("review", "assign", "--all", "--json")
    assigned = json.loads(out)["assigned"]
    assert code == 0 and set(assigned) == {a, b}
    assert all("conflit@eval.example.org" not in emails for emails in assigned.values())

    code, _, err = cli("review", "score", a, *NOTES, "--reviewer", "conflit@eval.example.org",
                       "--comment", "x")
    assert code == 2 and "conflit d'intérêts" in err
    code, _, err = cli("review", "score", a, "pertinence=9", "--reviewer", assigned[a][0],
                       "--comment", "x")
    assert code == 2 and "grille invalide" in err and "manquant" in err
    for ref in (a, b):
        for email in assigned[ref]:
            assert cli("review", "score", ref, *NOTES, "--reviewer", email,
                       "--comment", "Alliance solide, impact à préciser.")[0] == 0
    assert json.loads(cli("show", a, "--json")[1])["status"] == "committee"

    proposal = json.loads(cli("committee", "propose", "--json")[1])
    assert [p["proposed"] for p in proposal["applications"]] == [True, True]
    assert json.loads(cli("show", a, "--json")[1])["status"] == "committee"  # unchanged

    # m4 is recused; 2 of the 4 others present is not more than half
    code, _, err = cli("committee", "decide", a, "--approve", "--present",
                       "m0@comite.example.org,m1@comite.example.org,m4@comite.example.org")
    assert code == 2 and "quorum non atteint" in err and "récusés : m4@comite" in err
    code, _, err = cli("committee", "decide", a, "--approve", "--present", "x@y.example.org")
    assert code == 2 and "ne sont pas membres du comité" in err
    present = "m0@comite.example.org,m1@comite.example.org,m2@comite.example.org"
    code, out, _ = cli("committee", "decide", a, "--approve", "--amount", "90000",
                       "--present", present + ",m4@comite.example.org", "--json")
    assert code == 0 and json.loads(out) == {"reference": a, "outcome": "approve",
                                             "amount": "90000.00"}
    code, _, err = cli("committee", "decide", b, "--reject", "--present", present)
    assert code == 2 and "doit être motivé" in err
    assert cli("committee", "decide", b, "--reject", "--motif", "Budget insuffisamment "
               "étayé.", "--present", present)[0] == 0

    detail = json.loads(cli("show", a, "--json")[1])
    assert detail["status"] == "approved"
    assert detail["grant"]["awarded"] == "90000.00"
    assert [r["weighted_score"] for r in detail["reviews"]] == ["3.917", "3.917"]
    assert detail["score"] == "3.917"
    assert {r["reviewer"] for r in detail["recusals"]} == {"conflit@eval.example.org",
                                                            "m4@comite.example.org"}
    assert detail["decision"]["outcome"] == "approve"
    assert detail["decision"]["recused"] == ["m4@comite.example.org"]
    assert "m4@comite.example.org" not in detail["decision"]["present"]
    rejected = json.loads(cli("show", b, "--json")[1])
    assert rejected["status"] == "rejected"
    assert rejected["history"][-1]["reason"].endswith("Budget insuffisamment étayé.")
    assert json.loads(cli("finance", "--json", "--check")[1])["check"] == []


def test_approval_that_does_not_fit_is_refused_and_recorded(engine: Engine) -> None:
    fillers = in_committee(engine, 20, requested="100000.00", start=200)
    now = dt.datetime(2026, 12, 2, tzinfo=dt.UTC)
    with unit_of_work(engine) as s:
        for ref in fillers:
            ledger.approve(as_uow(s, now=now, actor="t"), ref, Decimal("99000"), plan=DEFAULT_PLAN)
    [ref] = in_committee(engine, 1)
    people(engine)
    present = "m0@comite.example.org,m1@comite.example.org,m2@comite.example.org"
    code, _, err = cli("committee", "decide", ref, "--approve", "--present", present)
    assert code == 2 and "ne permet pas d'engager 100" in err
    detail = json.loads(cli("show", ref, "--json")[1])
    assert detail["status"] == "committee" and detail["grant"] is None
    assert "ne permet pas" in detail["decision"]["error"]
    assert cli("committee", "decide", ref, "--approve", "--amount", "20000", "--present",
               present)[0] == 0  # what fits does


@pytest.mark.usefixtures("prefect_server")
def test_review_flow_interrupted_then_rerun(engine: Engine,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    refs = eligible(engine, 3)
    people(engine)
    summary = review_flow()
    assert summary["assigned"] == 3 and summary["short"] == {}
    now = dt.datetime(2026, 12, 4, tzinfo=dt.UTC)
    with uow(engine, now=now) as u:
        policy = u.config.review
        for app in u.session.scalars(select(Application)):
            for r in scoring.review_detail(u.session, app, policy)["reviews"]:
                scoring.score(u, app.reference, r["reviewer"], dict.fromkeys(policy.weights, 4),
                              "ok")
    members = ["m0@comite.example.org", "m1@comite.example.org", "m2@comite.example.org"]
    # decisions recorded by the secretary, not yet applied
    with uow(engine, actor="secretariat", now=now) as u:
        for ref in refs:
            committee.record_decision(u, ref, "approve", present=members, amount=None,
                                      motif="")
    real = committee.apply_decision
    monkeypatch.setattr(committee, "apply_decision", dies_on_call(2, real, "worker killed"))
    with pytest.raises(BaseException, match="worker killed"):
        review_flow()
    monkeypatch.setattr(committee, "apply_decision", real)
    with uow(engine) as u:
        assert len(committee.pending_decisions(u)) == 2
    summary = review_flow()
    assert summary["applied"] == 2 and summary["failed"] == []
    with uow(engine) as u:
        s = u.session
        assert set(s.scalars(select(Application.status))) == {"approved"}
        assert committee.pending_decisions(u) == []
        assert all(d.applied_at for d in s.scalars(select(Decision)))
        assert audit.check(uow_on(s)) == []
    assert review_flow()["applied"] == 0  # nothing left: the next run does nothing


def test_decision_outcome_is_one_of_three_in_the_code_and_the_database(engine: Engine) -> None:
    [ref] = in_committee(engine, 1)
    people(engine)
    now = dt.datetime(2026, 12, 2, tzinfo=dt.UTC)
    present = ["m0@comite.example.org", "m1@comite.example.org", "m2@comite.example.org"]
    with pytest.raises(DomainError, match="décision inconnue « approuver »"), \
            uow(engine, now=now) as u:
        committee.record_decision(u, ref, "approuver", present=present, amount=None, motif="")
    with uow(engine, now=now) as u:
        committee.record_decision(u, ref, "defer", present=present, amount=None, motif="")
    # the CHECK the migration adds survives a round trip, and so does the recorded decision
    cfg = setup.alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0006_ledger_corrections")
    setup.upgrade(engine)
    with unit_of_work(engine) as s:
        assert s.scalars(select(Decision.outcome)).one() is DecisionOutcome.defer
    with pytest.raises(DBAPIError), engine.begin() as conn:
        conn.execute(text("UPDATE decisions SET outcome = 'maybe'"))
