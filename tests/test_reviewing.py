"""The reviewer's workspace: assigned applications with due dates, drafts finished later, a
submitted review final, the applicant's identity hidden when the fund says so."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, select

from models import Application, DomainError, NotFound, Recusal, Review, Status
from odd17.services import choosing, reviewing, scoring
from odd17.settings import get_fund_config
from odd17.uow import Context, open_uow
from tests.factories import eligible
from tests.review_support import NOW, uow
from tests.test_choosing_comments import HOSTILE, people

FULL = {"pertinence": 4, "alliance": 5, "impact": 3, "innovation": 4, "modele": 3}
R0, R1 = "r0@eval.example.org", "r1@eval.example.org"


def assigned(engine: Engine, count: int = 1) -> list[str]:
    refs = eligible(engine, count)
    people(engine)
    for ref in refs:
        with uow(engine) as u:
            choosing.assign_chosen(u, ref, [R0, R1])
    return refs


def at(engine: Engine, when: dt.datetime, **review: object):  # type: ignore[no-untyped-def]
    config = get_fund_config()
    config = config.model_copy(update={"review": config.review.model_copy(update=review)})
    return open_uow(engine, Context(actor="t", config=config, clock=lambda: when))


def test_list_with_due_dates_in_the_fund_zone(engine: Engine) -> None:
    a, b = assigned(engine, 2)
    late = NOW + dt.timedelta(days=21, hours=15)  # 2026-12-25 00:00 in Paris: one day late
    with at(engine, late) as u:
        rows = reviewing.assigned_to(u, "R0@eval.example.org ")
    assert [r["reference"] for r in rows] == [a, b]
    assert rows[0]["due_on"] == "2026-12-24" and rows[0]["overdue"]
    assert rows[0]["state"] == "todo" and rows[0]["state_label"] == "à faire"
    assert rows[0]["lead_name"] == "Association Passerelles Mantoises"
    with at(engine, late - dt.timedelta(hours=1), delay_days=30) as u:
        row = reviewing.assigned_to(u, R0)[0]
    assert row["due_on"] == "2027-01-02" and not row["overdue"]
    with uow(engine) as u:
        assert reviewing.assigned_to(u, "r2@eval.example.org") == []
        with pytest.raises(NotFound):
            reviewing.assigned_to(u, "personne@example.org")


def test_draft_saved_then_finished_then_final(engine: Engine) -> None:
    ref, = assigned(engine)
    with uow(engine) as u:
        form = reviewing.save_draft(u, ref, R0, {"pertinence": 4, "impact": None}, HOSTILE)
    assert form["state"] == "draft" and form["comment"] == HOSTILE.strip()
    assert {c["name"]: c["value"] for c in form["criteria"]}["pertinence"] == 4
    assert form["criteria"][0]["weight"] == 3 and form["criteria"][0]["description"]
    with pytest.raises(DomainError, match="critère « alliance » manquant"), uow(engine) as u:
        reviewing.submit(u, ref, R0)
    for bad, message in (({"impact": 6}, "hors de l'échelle 0–5"),
                         ({"beaute": 2}, "critère inconnu « beaute »"),
                         ({"impact": "4"}, "note entière attendue")):
        with pytest.raises(DomainError, match=message), uow(engine) as u:
            reviewing.save_draft(u, ref, R0, bad, "x")
    with uow(engine) as u:
        assert reviewing.review_form(u, ref, R0)["criteria"][0]["value"] == 4  # kept
        reviewing.save_draft(u, ref, R0, FULL, HOSTILE)
        assert reviewing.assigned_to(u, R0)[0]["state"] == "draft"
    with uow(engine) as u:
        reviewing.submit(u, ref, R0)
    with uow(engine) as u:
        form = reviewing.review_form(u, ref, R0)
        review = u.session.scalars(select(Review).where(Review.scored_at.is_not(None))).one()
        assert review.scores == FULL and review.draft_scores is None
    assert form["state"] == "submitted" and form["comment"] == HOSTILE.strip()
    assert form["weighted_score"] == "3.917" and form["saved_at"] is None
    for attempt in (lambda u: reviewing.save_draft(u, ref, R0, FULL, "autre"),
                    lambda u: reviewing.submit(u, ref, R0),
                    lambda u: scoring.score(u, ref, R0, FULL, "autre")):
        with pytest.raises(DomainError, match="déjà rendue"), uow(engine) as u:
            attempt(u)
    with uow(engine) as u:
        reviewing.save_draft(u, ref, R1, FULL, "dernier avis")
        reviewing.submit(u, ref, R1)
    with uow(engine) as u:
        assert u.session.scalar(select(Application.status)) == Status.committee
        with pytest.raises(DomainError, match="déjà rendue"):
            reviewing.save_draft(u, ref, R1, {}, "")


def test_not_designated_or_recused_is_not_found(engine: Engine) -> None:
    ref, = assigned(engine)
    with uow(engine) as u:
        for email in ("r2@eval.example.org", "conflit@eval.example.org"):
            with pytest.raises(NotFound, match="aucun dossier"):
                reviewing.review_form(u, ref, email)
        app = u.session.scalars(select(Application)).one()
        review = u.session.scalars(select(Review)).first()
        assert review is not None
        u.session.add(Recusal(application_id=app.id, reviewer_id=review.reviewer_id,
                              reason="déclaré après coup", at=NOW))
        email = review.reviewer.email
    with uow(engine) as u:
        with pytest.raises(NotFound):
            reviewing.save_draft(u, ref, email, FULL, "x")
        assert [r["reference"] for r in reviewing.assigned_to(u, email)] == []


def test_anonymous_fund_hides_the_lead(engine: Engine) -> None:
    ref, = assigned(engine)
    with at(engine, NOW, anonymous=True) as u:
        form = reviewing.review_form(u, ref, R0)
        row = reviewing.assigned_to(u, R0)[0]
    assert form["lead"] is None and row["lead_name"] is None
    with uow(engine) as u:
        lead = reviewing.review_form(u, ref, R0)["lead"]
    assert lead is not None and lead["name"] == "Association Passerelles Mantoises"
    shown = repr(form)
    for identity in (lead["name"], lead["siret"], lead["rna"], lead["email"]):
        assert identity and identity not in shown
