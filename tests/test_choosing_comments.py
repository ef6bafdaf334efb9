"""Reviewers chosen by hand (conflicted ones cannot be, and the reason is given) and internal
comments (append-only, in the history)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import DBAPIError

from models import Application, DomainError, NotFound, OutboxMessage, Recusal, Review, Status
from odd17.services import choosing, comments, reviewers
from tests.factories import eligible
from tests.review_support import NOW, uow
from tests.test_review import PARTNER, siren

HOSTILE = "<b>gras</b> & 'quote' \"dq\" {{ 7*7 }} ${x} [red]rouge[/red] %s _ \x0b é"


def people(engine: Engine) -> None:
    with uow(engine) as u:
        for i in range(3):
            reviewers.add_reviewer(u, reviewers.ReviewerIn(
                name=f"R{i}", email=f"r{i}@eval.example.org", siren=siren(600 + i)))
        reviewers.add_reviewer(u, reviewers.ReviewerIn(
            name="Conflit", email="conflit@eval.example.org", siren=PARTNER))
        reviewers.add_reviewer(u, reviewers.ReviewerIn(
            name="Membre", email="m@comite.example.org", committee=True, reviews=False))


def test_candidates_say_why_they_cannot_be_chosen(engine: Engine) -> None:
    ref, = eligible(engine, 1)
    people(engine)
    with uow(engine) as u:
        found = {c["email"]: c for c in choosing.assignable_reviewers(u, ref)}
    assert set(found) == {"r0@eval.example.org", "r1@eval.example.org",
                          "r2@eval.example.org", "conflit@eval.example.org"}
    conflict = found["conflit@eval.example.org"]
    assert not conflict["choosable"] and conflict["reason"] is not None
    assert conflict["reason"].startswith("conflit d'intérêts : son organisation (SIREN "
                                         f"{PARTNER}) est partenaire du projet")
    assert all(found[f"r{i}@eval.example.org"]["choosable"] for i in range(3))
    with uow(engine) as u:  # a read: no recusal written
        assert u.session.scalar(select(func.count()).select_from(Recusal)) == 0


def test_assign_chosen_refuses_a_conflicted_one_and_writes_nothing(engine: Engine) -> None:
    ref, = eligible(engine, 1)
    people(engine)
    with pytest.raises(DomainError, match=r"conflit@eval.example.org \(conflit d'intérêts : "
                                          r"son organisation"), uow(engine) as u:
        choosing.assign_chosen(u, ref, ["r0@eval.example.org", "conflit@eval.example.org"])
    for bad, message in ((["r0@eval.example.org"], "2 évaluateur\\(s\\) à désigner, 1"),
                         (["r0@eval.example.org", "x@y.example.org"], "inconnu.*x@y"),
                         (["r0@eval.example.org", "m@comite.example.org"], "inconnu")):
        with pytest.raises(DomainError, match=message), uow(engine) as u:
            choosing.assign_chosen(u, ref, bad)
    with uow(engine) as u:
        assert u.session.scalar(select(func.count()).select_from(Review)) == 0
        assert u.session.scalar(select(Application.status)) == Status.eligible


def test_assign_chosen_assigns_mails_moves_and_records_recusals(engine: Engine) -> None:
    ref, = eligible(engine, 1)
    people(engine)
    with uow(engine, actor="gestionnaire") as u:
        assert choosing.assign_chosen(u, ref, [" R2@eval.example.org", "r1@eval.example.org",
                                               "r2@eval.example.org"]) == [
            "r2@eval.example.org", "r1@eval.example.org"]
    with uow(engine) as u:
        app = u.session.scalars(select(Application)).one()
        assert app.status == Status.in_review
        assert app.history[-1].actor == "gestionnaire"
        assert "r2@eval.example.org, r1@eval.example.org" in app.history[-1].reason
        assert sorted(r.reviewer.email for r in u.session.scalars(select(Review))) == [
            "r1@eval.example.org", "r2@eval.example.org"]
        assert [r.reviewer.email for r in u.session.scalars(select(Recusal))] == [
            "conflit@eval.example.org"]
        assert sorted(m.recipient for m in u.session.scalars(select(OutboxMessage))
                      if m.event == "review_assigned") == ["r1@eval.example.org",
                                                           "r2@eval.example.org"]
        found = {c["email"]: c for c in choosing.assignable_reviewers(u, ref)}
    assert found["r1@eval.example.org"]["reason"] == "déjà désigné pour ce dossier"
    assert found["r0@eval.example.org"]["choosable"] and found["r1@eval.example.org"]["load"] == 1
    assert found["conflit@eval.example.org"]["reason"].startswith("conflit d'intérêts")
    with pytest.raises(DomainError, match="au statut « in_review »"), uow(engine) as u:
        choosing.assign_chosen(u, ref, ["r0@eval.example.org", "r1@eval.example.org"])


def test_recorded_recusal_is_a_reason(engine: Engine) -> None:
    ref, = eligible(engine, 1)
    people(engine)
    with uow(engine) as u:
        app = u.session.scalars(select(Application)).one()
        r0 = u.session.scalars(select(reviewers.Reviewer).where(
            reviewers.Reviewer.email == "r0@eval.example.org")).one()
        u.session.add(Recusal(application_id=app.id, reviewer_id=r0.id, reason=HOSTILE,
                              at=NOW))
    with uow(engine) as u:
        found = {c["email"]: c for c in choosing.assignable_reviewers(u, ref)}
    assert found["r0@eval.example.org"]["reason"] == f"récusé : {HOSTILE}"
    with pytest.raises(DomainError, match="récusé"), uow(engine) as u:
        choosing.assign_chosen(u, ref, ["r0@eval.example.org", "r1@eval.example.org"])


def test_comments_are_kept_as_typed_and_in_the_history(engine: Engine) -> None:
    ref, = eligible(engine, 1)
    later = NOW + dt.timedelta(days=400)
    with uow(engine, actor="gestion@fonds.example.org", now=later) as u:
        made = comments.add_comment(u, ref.lower(), f"  {HOSTILE}\n")
    assert made["body"] == HOSTILE and made["author"] == "gestion@fonds.example.org"
    with uow(engine) as u:
        assert comments.comments(u, ref) == [made]
        entries = comments.history(u, ref)
    assert [e["kind"] for e in entries] == ["status", "status", "comment"]
    assert entries[-1]["text"] == HOSTILE and entries[1]["to_label"] == "éligible"
    for bad, message in (("   ", "commentaire vide"), ("x" * 10_001, "trop long : 10001")):
        with pytest.raises(DomainError, match=message), uow(engine) as u:
            comments.add_comment(u, ref, bad)
    with pytest.raises(NotFound), uow(engine) as u:
        comments.add_comment(u, "ODD-1999-99999", "x")


@pytest.mark.parametrize("statement", ["UPDATE comments SET body = 'autre'",
                                       "DELETE FROM comments"])
def test_comments_cannot_be_changed_or_deleted(engine: Engine, statement: str) -> None:
    ref, = eligible(engine, 1)
    with uow(engine) as u:
        comments.add_comment(u, ref, "premier avis")
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text(statement))
    with uow(engine) as u:
        assert [c["body"] for c in comments.comments(u, ref)] == ["premier avis"]
