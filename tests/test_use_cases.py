"""The use cases the CLI's commands call (and the web will): each one does the whole job of
its command without the CLI, so no entry point orchestrates transactions or queries the ORM."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import Engine, select

from models import Application, Decision, DomainError, Status
from odd17.db import unit_of_work
from odd17.services import audit, committee, finance, ledger, outbox, reviewers
from odd17.uow import Context, open_uow
from rules.tranches import DEFAULT_PLAN
from tests.factories import as_uow, in_committee, uow_on
from tests.review_support import runner, uow
from tests.test_review import siren

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
T = Decimal("0.10")
MEMBERS = [f"m{i}@comite.example.org" for i in range(3)]


def members(engine: Engine) -> None:
    with uow(engine, now=NOW) as u:
        for i, email in enumerate(MEMBERS):
            reviewers.add_reviewer(u, reviewers.ReviewerIn(
                name=f"M{i}", email=email, siren=siren(700 + i), committee=True,
                reviews=False))


def decide(engine: Engine, reference: str, outcome: str = "approve",
           motif: str = "") -> ledger.Result | None:
    return committee.decide(runner(engine, now=NOW), reference, outcome, present=MEMBERS,
                            amount=None, motif=motif)


def test_decide_records_then_applies_and_notes_what_the_envelope_refuses(
        engine: Engine) -> None:
    *taken, b, c = in_committee(engine, 11, requested="200000.00")  # envelope: 2,000,000
    with unit_of_work(engine) as s:
        for ref in taken:  # 1,800,000 committed: room for one more
            ledger.approve(as_uow(s, now=NOW, actor="t"), ref, Decimal("200000.00"),
                           plan=DEFAULT_PLAN)
    members(engine)
    result = decide(engine, b)
    assert result is not None and result.amount == Decimal("200000.00")
    with pytest.raises(DomainError) as refused:
        decide(engine, c)
    with unit_of_work(engine) as s:
        statuses = dict(s.execute(select(Application.reference, Application.status)).all())
        assert statuses[b] == Status.approved and statuses[c] == Status.committee
        [last] = s.scalars(select(Decision).join(Application)
                           .where(Application.reference == c)).all()
        assert last.applied_at is None and last.error == str(refused.value)
    with uow(engine) as u:  # noted as failed: not retried by the flow
        assert committee.pending_decisions(u) == []
    with unit_of_work(engine) as s:
        assert audit.check(uow_on(s)) == []


def test_decide_records_nothing_it_refuses(engine: Engine) -> None:
    [a] = in_committee(engine, 1)
    members(engine)
    with pytest.raises(DomainError, match="motivé"):
        decide(engine, a, "reject")
    assert decide(engine, a, "reject", motif="hors sujet") is None
    with unit_of_work(engine) as s:
        assert [d.outcome for d in s.scalars(select(Decision))] == ["reject"]
        assert s.scalar(select(Application.status)) == Status.rejected


def test_record_topup_derives_its_key_from_amount_and_motif(engine: Engine) -> None:
    def topup(amount: str, motif: str, key: str | None = None) -> ledger.Result:
        with unit_of_work(engine) as s:
            return ledger.record_topup(as_uow(s, now=NOW, actor="t"), Decimal(amount),
                                       reason=motif, key=key)

    first = topup("1000.00", "CA du 3 mars")
    assert first.recorded
    again = topup("1000", "  ca DU 3 mars ")  # the same decision retyped: nothing new
    assert not again.recorded and again.entry == first.entry
    assert topup("1000.00", "CA du 4 mars").recorded
    assert topup("1000.00", "CA du 3 mars", key="second-versement").recorded
    with unit_of_work(engine) as s:
        assert finance.finance_report(uow_on(s))["envelope"] == "2003000.00"


def test_list_reviewers_is_sorted_by_email(engine: Engine) -> None:
    members(engine)
    with uow(engine, now=NOW) as u:
        reviewers.add_reviewer(u, reviewers.ReviewerIn(name="A", email="a@eval.example.org",
                                                       interests=[siren(1)]))
        rows = reviewers.list_reviewers(u)
    assert [r["email"] for r in rows] == ["a@eval.example.org", *MEMBERS]
    assert rows[0] == {"email": "a@eval.example.org", "name": "A", "siren": None,
                       "interests": [siren(1)], "committee": False, "reviews": True}


def test_preview_renders_the_example_or_the_stored_message(engine: Engine) -> None:
    context = Context.from_settings("test")
    assert "ODD17-2026-0007" in outbox.preview(context, "application_received").text
    with open_uow(engine, context) as uow, pytest.raises(DomainError, match="aucun message"):
        outbox.preview(context, "application_received", uow=uow, reference="ODD17-2026-9999")
    [a] = in_committee(engine, 1)  # intake enqueued its acknowledgement
    with open_uow(engine, context) as uow:
        assert a in outbox.preview(context, "application_received", uow=uow,
                                   reference=a.lower()).text
