"""The fund manager's board: counts, filters, search and pages in SQL; hostile text kept as
typed (the pages escape it)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select, update

from models import Application, DomainError, Review, Reviewer, Status
from odd17.services.board import board, parse_query
from tests.factories import eligible
from tests.review_support import uow

HOSTILE = "<script>alert('x')</script> 100% & _tiret_ \"«»\" ; DROP TABLE applications;--"
RHONE = {"region": "Auvergne-Rhône-Alpes", "department": "69", "commune_insee": "69123"}


def _set(engine: Engine, reference: str, **values: object) -> None:
    with uow(engine) as u:
        u.session.execute(update(Application).where(Application.reference == reference)
                          .values(**values))


def _scored(engine: Engine, reference: str, *millis: int) -> None:
    """Reviews with these recorded weighted scores (thousandths)."""
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    with uow(engine) as u:
        app = u.session.scalars(select(Application).where(
            Application.reference == reference)).one()
        for i, milli in enumerate(millis):
            reviewer = Reviewer(email=f"s{app.id}-{i}@eval.example.org", name="S", siren=None,
                                interests=[], reviews=True, committee=False, active=True,
                                created_at=now)
            u.session.add(reviewer)
            u.session.flush()
            u.session.add(Review(application_id=app.id, reviewer_id=reviewer.id,
                                 assigned_at=now, weighted_milli=milli, scores={},
                                 scored_at=now))


def _refs(result: dict) -> list[str]:  # type: ignore[type-arg]
    return [r["reference"] for r in result["rows"]]


def show(engine: Engine, **raw: object) -> dict:  # type: ignore[type-arg]
    with uow(engine) as u:
        return dict(board(u, parse_query(raw)))


@pytest.fixture
def apps(engine: Engine) -> list[str]:
    refs = eligible(engine, 3) + eligible(engine, 1, start=10, territory=RHONE,
                                          objectives=["dialogue"], title=HOSTILE)
    _set(engine, refs[0], status=Status.in_review)
    return refs


def test_counts_by_status_and_every_row_newest_first(engine: Engine, apps: list[str]) -> None:
    result = show(engine)
    assert result["counts"]["eligible"] == 3 and result["counts"]["in_review"] == 1
    assert result["counts"]["approved"] == 0 and result["total"] == 4
    assert _refs(result) == apps[::-1]
    row = result["rows"][0]
    assert row["title"].startswith(HOSTILE) and row["region"] == "Auvergne-Rhône-Alpes"
    assert row["status_label"] == "éligible" and row["objective_label"] == "Dialogue"
    assert row["score"] is None and row["reviews_assigned"] == 0


def test_filters_keep_the_counts_of_the_other_statuses(engine: Engine, apps: list[str]) -> None:
    result = show(engine, status=["in_review"])
    assert _refs(result) == [apps[0]] and result["total"] == 1
    assert result["counts"]["eligible"] == 3  # the tabs still show what the others hold
    assert _refs(show(engine, region="Auvergne-Rhône-Alpes")) == [apps[3]]
    assert _refs(show(engine, objective="dialogue")) == [apps[3]]
    assert show(engine, objective="dialogue")["counts"]["eligible"] == 1
    assert _refs(show(engine, call="autre-appel")) == []
    assert len(_refs(show(engine, status=["eligible", "in_review"]))) == 4


def test_search_reference_title_lead_siret_rna(engine: Engine, apps: list[str]) -> None:
    with uow(engine) as u:
        app = u.session.scalars(select(Application).where(
            Application.reference == apps[1])).one()
        siret, rna, lead = app.lead.siret, app.lead.rna, app.lead.name
    assert siret and rna
    assert _refs(show(engine, search=apps[1].lower())) == [apps[1]]
    assert _refs(show(engine, search=f"{siret[:3]} {siret[3:9]}")) == [apps[1]]
    assert _refs(show(engine, search=rna.lower())) == apps[::-1]  # the same RNA everywhere
    assert len(_refs(show(engine, search=lead.upper()))) == 4
    assert _refs(show(engine, search="ALLIANCE POUR l'emploi des jeunes du Mantois n°2")) == [
        apps[2]]


def test_hostile_search_is_literal(engine: Engine, apps: list[str]) -> None:
    for needle in ("100%", "_tiret_", "<script>", "\"«»\"", "DROP TABLE"):
        assert _refs(show(engine, search=needle)) == [apps[3]], needle
    assert _refs(show(engine, search="%")) == [apps[3]]   # not « any text »
    assert _refs(show(engine, search="_")) == [apps[3]]   # not « any character »
    assert show(engine, search="%'\";--")["total"] == 0


def test_score_range_on_the_mean_of_the_reviews(engine: Engine, apps: list[str]) -> None:
    _scored(engine, apps[0], 3000, 4000)     # mean 3.500
    _scored(engine, apps[1], 2999)           # 2.999
    _scored(engine, apps[2], 4500, 4501)     # 4.5005
    result = show(engine, score_min="3.5")
    assert _refs(result) == [apps[2], apps[0]]
    assert {r["reference"]: r["score"] for r in result["rows"]} == {apps[0]: "3.500",
                                                                   apps[2]: "4.500"}
    assert _refs(show(engine, score_min="3", score_max="3.5")) == [apps[0]]
    assert _refs(show(engine, score_max="2.999")) == [apps[1]]
    assert _refs(show(engine, score_max="2.998")) == []   # unscored ones are never in range
    assert show(engine, score_min="3.5")["rows"][1]["reviews_done"] == 2


def test_pages(engine: Engine, apps: list[str]) -> None:
    first, second, third = (show(engine, per_page=3, page=n) for n in (1, 2, 3))
    assert first["pages"] == 2 and _refs(first) == apps[:0:-1] and _refs(second) == [apps[0]]
    assert _refs(third) == [] and third["total"] == 4


@pytest.mark.parametrize(("raw", "message"), [
    ({"status": ["perdu"]}, "status"),
    ({"per_page": 0}, "per_page"),
    ({"page": "deux"}, "page"),
    ({"score_min": "abc"}, "score_min"),
    ({"score_min": "1.0001"}, "score_min : au plus trois décimales"),
    ({"score_min": "4", "score_max": "3"}, "le minimum (4) dépasse le maximum (3)"),
    ({"colonne": "x"}, "colonne"),
    ({"search": "x" * 201}, "search"),
])
def test_bad_queries_are_refused_in_french(raw: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(DomainError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_query(raw)


def test_blank_fields_mean_no_filter() -> None:
    query = parse_query({"region": "  ", "search": "", "score_min": Decimal("2")})
    assert query.region is None and query.search is None and query.score_min == 2


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(title=st.text(st.characters(codec="utf-8", categories=["L", "N", "P", "S", "Zs"]),
                     min_size=1, max_size=60),
       cut=st.tuples(st.integers(0, 59), st.integers(1, 60)))
def test_any_title_is_found_by_any_part_of_it_as_typed(
        engine: Engine, apps: list[str], title: str, cut: tuple[int, int]) -> None:
    """Whatever the title holds (LIKE's ``%``, ``_`` and escape character included), any part
    of it, typed as it is, finds it."""
    start = min(cut[0], len(title) - 1)
    needle = title[start:start + cut[1]]
    if not needle.strip():
        return
    _set(engine, apps[1], title=title)
    assert apps[1] in _refs(show(engine, search=needle, per_page=10))
