"""Committee review: conflicts, assignment, scoring, quorum, decisions, the review flow."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, select, update

from models import Application, Review, Reviewer
from odd17.db import unit_of_work
from odd17.services import assignment, reviewers, scoring
from rules.review import ReviewPolicy, conflicts, has_quorum, parties, propose, weighted
from tests.factories import application, eligible, make_siret
from tests.review_support import uow
from tests.test_cli import cli

POLICY = ReviewPolicy()
LEAD = application()["lead"]["siret"][:9]          # 526018155
PARTNER = application()["partners"][0]["siret"][:9]  # 016613184


def siren(n: int) -> str:
    return make_siret(n)[:9]


# --- pure policy --------------------------------------------------------------------------

def test_conflicts_by_lead_partner_cofunder_and_interest() -> None:
    doc = application(cofunding=[
        {"funder": "Banque des Territoires", "kind": "etat", "amount": "1000",
         "siret": make_siret(77)},
        {"funder": "Logistique Seine Aval SAS", "kind": "entreprise", "amount": "1000"},
    ])
    found = parties(doc)
    assert [(p.role, p.siren) for p in found] == [
        ("porteur", LEAD), ("partenaire", PARTNER), ("partenaire", "390996031"),
        ("cofinanceur", siren(77)), ("cofinanceur", PARTNER)]  # the last one matched by name
    assert "porteur" in conflicts(LEAD, [], found)[0].reason
    assert "partenaire" in conflicts(PARTNER, [], found)[0].reason
    assert "cofinanceur" in conflicts(siren(77), [], found)[0].reason
    assert "intérêt déclaré" in conflicts(siren(5), [LEAD], found)[0].reason
    assert conflicts(siren(5), [siren(6)], found) == []
    assert conflicts(None, [], found) == []


def test_rubric() -> None:
    from rules.review import validate_scores

    full = dict.fromkeys(POLICY.weights, 5)
    assert validate_scores(full, POLICY) == [] and weighted(full, POLICY) == Decimal("5.000")
    mixed = {"pertinence": 4, "alliance": 3, "impact": 2, "innovation": 5, "modele": 1}
    assert weighted(mixed, POLICY) == Decimal("3.083")  # (12 + 9 + 4 + 10 + 2) / 12
    problems = validate_scores({"pertinence": 6, "alliance": "3", "impact": True,
                                "innovation": 2, "bonus": 1}, POLICY)
    assert problems == ["pertinence : note 6 hors de l'échelle 0–5",
                        "alliance : note entière attendue, pas « 3 »",
                        "impact : note entière attendue, pas « True »",
                        "critère « modele » manquant",
                        "critère inconnu « bonus » (critères : pertinence, alliance, impact, "
                        "innovation, modele)"]


@pytest.mark.parametrize(("present", "members", "ok"), [
    (3, 5, True), (2, 5, False), (2, 4, False), (3, 4, True), (1, 1, True), (0, 0, False)])
def test_quorum_is_more_than_half(present: int, members: int, ok: bool) -> None:
    assert has_quorum(present, members) is ok


def test_proposal_stops_at_the_first_that_does_not_fit() -> None:
    ranked = [("A", Decimal("4.5"), Decimal("100")), ("B", Decimal("4.8"), Decimal("150")),
              ("C", Decimal("3.0"), Decimal("10")), ("D", Decimal("4.0"), Decimal("200"))]
    result = [(p.reference, p.funded) for p in propose(ranked, Decimal("300"))]
    assert result == [("B", True), ("A", True), ("D", False), ("C", False)]


# --- reviewers ----------------------------------------------------------------------------

def test_import_keeps_good_rows_and_names_bad_ones(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "evaluateurs.csv"
    path.write_text(
        "name,email,siren,interests,committee\n"
        f"Anne Dupuis,anne@eval.example.org,{siren(1)},{LEAD};{siren(2)},oui\n"
        "Sans Email,,,,\n"
        f"Bruno Martin,bruno@eval.example.org,123456789,,non\n"
        f"Chloé Bernard,chloe@eval.example.org,{siren(3)},,non\n"
    )
    code, out, _ = cli("reviewers", "import", str(path), "--json")
    assert code == 1
    result = json.loads(out)
    assert (result["created"], result["updated"]) == (2, 0)
    assert [r["source"].rsplit(":", 1)[1] for r in result["refused"]] == ["3", "4"]
    assert "email" in result["refused"][0]["errors"]
    assert "SIREN invalide" in result["refused"][1]["errors"]
    listed = json.loads(cli("reviewers", "list", "--json")[1])
    assert [(r["email"], r["committee"], r["interests"]) for r in listed] == [
        ("anne@eval.example.org", True, [LEAD, siren(2)]),
        ("chloe@eval.example.org", False, [])]


# --- assignment ---------------------------------------------------------------------------

def add_reviewers(engine: Engine, count: int, committee: int = 0, **extra: object) -> list[str]:
    emails = []
    with uow(engine) as u:
        for i in range(count):
            data = reviewers.ReviewerIn(name=f"Évaluateur {i}",
                                        email=f"r{i:02d}@eval.example.org",
                                        siren=siren(500 + i), committee=i < committee,
                                        **extra)  # type: ignore[arg-type]
            reviewers.add_reviewer(u, data)
            emails.append(data.email)
    return emails


def test_assignment_balances_and_excludes_conflicts(engine: Engine) -> None:
    refs = eligible(engine, 300)
    add_reviewers(engine, 12)
    with unit_of_work(engine) as s:  # r00 works for every lead's... partner: conflicted
        r00 = s.scalars(select(Reviewer).where(Reviewer.email == "r00@eval.example.org")).one()
        r00.interests = [PARTNER]
    with uow(engine) as u:
        result = assignment.assign(u)
    assert len(result.assigned) == 300 and result.short == {}
    load = Counter(e for emails in result.assigned.values() for e in emails)
    assert "r00@eval.example.org" not in load
    assert sum(load.values()) == 600
    assert max(load.values()) - min(load.values()) <= 1, load  # 600 over 11: 54 or 55
    with unit_of_work(engine) as s:
        detail = scoring.review_detail(s, s.scalars(select(Application)).first(), POLICY)  # type: ignore[arg-type]
        assert detail["recusals"][0]["reviewer"] == "r00@eval.example.org"
        assert "intérêt déclaré" in detail["recusals"][0]["reason"]
        assert {a.status for a in s.scalars(select(Application))} == {"in_review"}
    assert len(refs) == 300


def test_too_few_reviewers_keeps_the_application_eligible(engine: Engine) -> None:
    [ref] = eligible(engine, 1)
    with uow(engine) as u:
        reviewers.add_reviewer(u, reviewers.ReviewerIn(name="A", email="a@e.example.org",
                                                       siren=PARTNER))
        reviewers.add_reviewer(u, reviewers.ReviewerIn(name="B", email="b@e.example.org"))
        result = assignment.assign(u)
    assert result.short == {ref: 1} and result.assigned == {}
    with unit_of_work(engine) as s:
        assert s.scalars(select(Application.status)).one() == "eligible"
        assert s.scalars(select(Review)).all() == []


# --- scores: exact mean, rounded once, printed the French way --------------------------------

def test_a_repeated_criterion_is_refused_naming_it() -> None:
    from rules.review import collect_scores

    _, problems = collect_scores([("pertinence", 4), ("alliance", 5), ("pertinence", 1),
                                  ("impact", 3), ("alliance", 2), ("pertinence", 0)])
    assert problems == ["critère « pertinence » noté plusieurs fois (une seule note par critère)",
                        "critère « alliance » noté plusieurs fois (une seule note par critère)"]
    assert collect_scores([("pertinence", 4), ("alliance", 5)]) == (
        {"pertinence": 4, "alliance": 5}, [])


def _exact_mean_rounded(notes: list[dict[str, int]], places: int) -> Decimal:
    """The reference computation: integers only, one rounding (half up) at the end."""
    total = sum(POLICY.weights.values())
    numerator = sum(POLICY.weights[c] * n[c] for n in notes for c in POLICY.weights)
    denominator = total * len(notes)
    scaled, rest = divmod(numerator * 10**places, denominator)
    return Decimal(scaled + (2 * rest >= denominator)).scaleb(-places)


@pytest.mark.parametrize("reviewers", range(1, 11))
def test_the_application_score_is_the_exact_mean_rounded_once(reviewers: int) -> None:
    from rules.review import exact_weighted, mean, rounded, score_fr, score_text

    grids = [dict(zip(POLICY.weights, (a % 6, b % 6, (a + b) % 6, a * b % 6, 5), strict=True))
             for a in range(6) for b in range(6)]
    for start in range(len(grids) - reviewers):
        notes = grids[start:start + reviewers]
        exact = mean([exact_weighted(n, POLICY) for n in notes])
        assert exact is not None
        assert score_fr(exact) == str(_exact_mean_rounded(notes, 2)).replace(".", ",")
        assert rounded(exact, 3) == Decimal(score_text(exact))  # type: ignore[arg-type]


def test_four_and_three_point_three_three_average_to_3_67_not_3_666() -> None:
    from rules.review import exact_weighted, mean, score_fr, score_text

    four = dict.fromkeys(POLICY.weights, 4)
    third = {"pertinence": 4, "alliance": 4, "impact": 4, "innovation": 2, "modele": 2}
    assert exact_weighted(third, POLICY) * 12 == 40  # 3.333…
    exact = mean([exact_weighted(four, POLICY), exact_weighted(third, POLICY)])
    assert score_text(exact) == "3.667" and score_fr(exact) == "3,67"


def test_scores_through_the_cli_exact_and_in_french(engine: Engine) -> None:
    [ref] = eligible(engine, 1)
    add_reviewers(engine, 2)
    with uow(engine) as u:
        assignment.assign(u)
    four = [f"{c}=4" for c in POLICY.weights]
    third = ["pertinence=4", "alliance=4", "impact=4", "innovation=2", "modele=2"]
    # a repeated criterion: refused, naming it, nothing recorded
    code, _, err = cli("review", "score", ref, *third, "impact=5", "--reviewer",
                       "r00@eval.example.org", "--comment", "ok")
    assert code == 2 and "« impact » noté plusieurs fois" in err
    with unit_of_work(engine) as s:
        assert [r.scored_at for r in s.scalars(select(Review))] == [None, None]
    code, out, _ = cli("review", "score", ref, *four, "--reviewer", "r00@eval.example.org",
                       "--comment", "ok")
    assert code == 0 and "note pondérée 4,00" in out
    code, out, _ = cli("review", "score", ref, *third, "--reviewer", "r01@eval.example.org",
                       "--comment", "ok")
    assert code == 0 and "note pondérée 3,33" in out
    detail = json.loads(cli("show", ref, "--json")[1])
    assert detail["score"] == "3.667"  # the documented shape: a string, a dot
    assert [r["weighted_score"] for r in detail["reviews"]] == ["4.000", "3.333"]
    assert json.loads(cli("committee", "propose", "--json")[1])["applications"][0][
        "score"] == "3.667"
    code, out, _ = cli("committee", "propose")
    assert code == 0 and "3,67" in out and "3.66" not in out
    # (shown as rejected: the human `show` of a `committee` application is the `cli` helper's)
    with unit_of_work(engine) as s:
        s.execute(update(Application).values(status="rejected"))
    code, out, _ = cli("show", ref)
    assert code == 0 and "note : 3,67" in out and "3,33" in out


# --- assignment at scale: bulk writes, compare-and-set, conflicts by index -----------------

PEOPLE_SIRENS = st.sampled_from([siren(n) for n in range(6)] + [LEAD, PARTNER])


@given(people=st.lists(st.tuples(st.one_of(st.none(), PEOPLE_SIRENS),
                                 st.lists(PEOPLE_SIRENS, max_size=3)), max_size=8),
       cofunder=st.one_of(st.none(), PEOPLE_SIRENS))
def test_the_conflict_index_finds_what_trying_everyone_finds(
        people: list[tuple[str | None, list[str]]], cofunder: str | None) -> None:
    from rules.review import ConflictIndex

    doc = application(cofunding=[] if cofunder is None else [
        {"funder": "Cofinanceur", "kind": "etat", "amount": "1000",
         "siret": cofunder + "00017"}])
    the_parties = parties(doc)
    every = {}
    for key, (own, interests) in enumerate(people):
        reasons = conflicts(own, interests, the_parties)
        if reasons:
            every[key] = "; ".join(r.reason for r in reasons)
    found = ConflictIndex((k, own, i) for k, (own, i) in enumerate(people)).find(the_parties)
    assert list(found.items()) == list(every.items())  # the same, in the same order


def count_statements(engine: Engine, references: list[str]) -> int:
    from sqlalchemy import event

    seen: list[str] = []

    def record(*args: object) -> None:
        seen.append(str(args[2]))

    with uow(engine) as u:
        event.listen(engine, "before_cursor_execute", record)
        try:
            result = assignment.assign(u, references)
        finally:
            event.remove(engine, "before_cursor_execute", record)
    assert set(result.assigned) == set(references)
    return len(seen)


def test_assignment_statements_do_not_grow_with_the_applications(engine: Engine) -> None:
    """Per batch, one read of the documents and one bulk write per table, whatever the number
    of applications (it used to flush and load each application's history one by one)."""
    refs = eligible(engine, 45)
    add_reviewers(engine, 6)
    with unit_of_work(engine) as s:  # conflicts on every application: recusals are written
        s.execute(update(Reviewer).where(Reviewer.email == "r00@eval.example.org")
                  .values(interests=[PARTNER]))
    few, many = count_statements(engine, refs[:3]), count_statements(engine, refs[3:])
    assert few == many


def test_assignment_writes_history_emails_and_recusals_once_each(engine: Engine) -> None:
    from models import OutboxMessage, Recusal, StatusChange
    from tests.review_support import NOW

    refs = eligible(engine, 7)
    add_reviewers(engine, 4)
    with unit_of_work(engine) as s:
        s.execute(update(Reviewer).where(Reviewer.email == "r00@eval.example.org")
                  .values(interests=[PARTNER]))
    with uow(engine, actor="secretariat") as u:
        loaded = u.session.scalars(select(Application)).all()  # known to the session before
        assert {a.status for a in loaded} == {"eligible"}
        result = assignment.assign(u, None)
        # what the session held is read again: it sees the move and its history row
        assert {a.status for a in loaded} == {"in_review"}
        assert all(a.history[-1].to_status == "in_review" for a in loaded)
    assert sorted(result.assigned) == sorted(refs)
    with unit_of_work(engine) as s:
        history = s.execute(select(Application.reference, StatusChange).join(StatusChange)
                            .where(StatusChange.to_status == "in_review")).all()
        assert sorted(ref for ref, _ in history) == sorted(refs)
        for ref, change in history:
            assert (change.from_status, change.actor, change.at) == ("eligible", "secretariat",
                                                                     NOW)
            assert change.reason == f"évaluateurs désignés : {', '.join(result.assigned[ref])}"
        mails = s.scalars(select(OutboxMessage).where(
            OutboxMessage.event == "review_assigned")).all()
        assert sorted((m.reference, m.recipient) for m in mails) == sorted(
            (ref, email) for ref, emails in result.assigned.items() for email in emails)
        assert len(s.scalars(select(Recusal)).all()) == 7  # r00 on each, recorded once
    with uow(engine) as u:  # nothing eligible is left: a second run moves nothing
        assert assignment.assign(u, None).assigned == {}


def test_a_batch_move_is_a_compare_and_set(engine: Engine) -> None:
    """One application of the batch moved meanwhile: the whole move is refused, nothing is
    written (no status, no history row)."""
    from models import ConcurrentChange, Status, StatusChange
    from models.application import move_many

    eligible(engine, 3)
    with unit_of_work(engine) as s:
        ids = list(s.scalars(select(Application.id).order_by(Application.id)))
        s.execute(update(Application).where(Application.id == ids[1]).values(status="withdrawn"))
        before = len(s.scalars(select(StatusChange)).all())
    with pytest.raises(ConcurrentChange, match="statut changé entre-temps"), uow(engine) as u:
        move_many(u.session, dict.fromkeys(ids, "test"), Status.eligible, Status.in_review,
                  actor="t", at=u.now)
    with unit_of_work(engine) as s:
        assert [str(x) for x in s.scalars(select(Application.status)
                                          .order_by(Application.id))] == [
            "eligible", "withdrawn", "eligible"]
        assert len(s.scalars(select(StatusChange)).all()) == before
