"""The committee's session: ranked proposal, members, recusals shown and excluded, quorum for
the members ticked, decisions told apart (applied, envelope short, refused), and the minutes
as a read model and a PDF read back."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest
from pypdf import PdfReader
from sqlalchemy import Engine, select

from models import Decision, DomainError
from odd17.services import minutes, sessions_committee
from tests.factories import in_committee
from tests.review_support import NOW, runner, uow
from tests.test_review_cycle import people

M = [f"m{i}@comite.example.org" for i in range(5)]  # m4 is conflicted (interest: a partner)
HOSTILE = "<script>alert(1)</script> & [b]gras[/b] **x** {{ y }} %s\x0b ; éàçœ « € »"


def test_session_shows_recused_members_and_the_quorum(engine: Engine) -> None:
    a, b = in_committee(engine, 2)
    people(engine)
    with uow(engine) as u:
        view = sessions_committee.session_view(u, [M[0], M[1], " M4@comite.example.org"])
    assert view["available"] == "2000000.00" and view["proposed_total"] == "200000.00"
    assert [m["email"] for m in view["members"]] == M
    assert [m["present"] for m in view["members"]] == [True, True, False, False, True]
    assert [i["reference"] for i in view["applications"]] == [a, b]
    item = view["applications"][0]
    assert [r["email"] for r in item["recused"]] == [M[4]]
    assert item["recused"][0]["reason"].startswith("intérêt déclaré dans")
    assert item["voting"] == [M[0], M[1]] and item["eligible_members"] == 4
    assert item["quorum"] is False and item["proposed"] is True
    with uow(engine) as u:
        assert sessions_committee.session_view(u, M[:3])["applications"][0]["quorum"] is True
        assert sessions_committee.session_view(u, [])["applications"][1]["quorum"] is False
        with pytest.raises(DomainError, match=r"ne sont pas membres du comité : x@y\.example"):
            sessions_committee.session_view(u, ["x@y.example.org"])


def test_decisions_applied_refused_and_envelope_short(engine: Engine) -> None:
    refs = in_committee(engine, 11, requested="200000.00")
    people(engine)
    run = runner(engine)
    for ref in refs[:10]:  # 10 × 200 000 € : the whole envelope
        done = sessions_committee.decide(run, ref, "approve", present=M[:3], amount=None,
                                         motif="")
        assert done["result"] == "applied" and done["status"] == "approved", done
        assert done["amount"] == "200000.00"
    with uow(engine) as u:
        view = sessions_committee.session_view(u, M[:3])
    assert view["available"] == "0.00" and view["applications"][0]["proposed"] is False
    short = sessions_committee.decide(run, refs[10], "approve", present=M[:3], amount=None,
                                      motif="")
    assert short["result"] == "envelope_short" and short["status"] == "committee"
    assert short["message"] is not None and "ne permet pas d'engager" in short["message"]
    with pytest.raises(DomainError, match="quorum non atteint"):
        sessions_committee.decide(run, refs[10], "reject", present=M[:1], amount=None,
                                  motif="x")
    with pytest.raises(DomainError, match="doit être motivé"):
        sessions_committee.decide(run, refs[10], "reject", present=M[:3], amount=None,
                                  motif="  ")
    done = sessions_committee.decide(run, refs[10], "reject", present=M, amount=None,
                                     motif=HOSTILE)
    assert done == {"reference": refs[10], "outcome": "reject", "result": "applied",
                    "amount": None, "message": None, "status": "rejected"}
    with uow(engine) as u:
        decisions = u.session.scalars(select(Decision).order_by(Decision.id)).all()
        assert len(decisions) == 12 and decisions[10].error and decisions[11].motif == \
            HOSTILE.strip()
        assert decisions[11].recused == [M[4]]


def _decided(engine: Engine) -> list[str]:
    a, b, c = in_committee(engine, 3, requested="150000.00")
    people(engine)
    run = runner(engine)
    sessions_committee.decide(run, a, "approve", present=M, amount=Decimal("120000.50"),
                              motif="Alliance solide, budget réduit.")
    sessions_committee.decide(run, b, "reject", present=M[:3], amount=None, motif=HOSTILE)
    sessions_committee.decide(runner(engine, now=NOW + dt.timedelta(days=1)), c, "defer",
                              present=M[:3], amount=None, motif="")
    return [a, b, c]


def test_minutes_of_one_day(engine: Engine) -> None:
    a, b, _ = _decided(engine)
    with uow(engine) as u:
        pv = minutes.minutes(u, dt.date(2026, 12, 3))
        next_day = minutes.minutes(u, dt.date(2026, 12, 4))
    assert pv["date_label"] == "3 décembre 2026" and pv["fund"] == "Fonds ODD 17"
    assert pv["present"] == M and pv["approved_total"] == "120000.50"
    first, second = pv["decisions"]
    assert (first["reference"], first["outcome_label"], first["amount"]) == (a, "accord",
                                                                              "120000.50")
    assert first["recused"][0]["email"] == M[4]
    assert first["recused"][0]["reason"].startswith("intérêt déclaré")
    assert first["present"] == M[:4] and first["state"] == "appliquée"
    assert first["recorded_at"] == "2026-12-03T10:00+01:00"
    assert (second["reference"], second["motif"]) == (b, HOSTILE.strip())
    assert [d["outcome"] for d in next_day["decisions"]] == ["defer"]


def test_minutes_pdf_reads_back_with_accents_and_literal_text(engine: Engine) -> None:
    a, b, _ = _decided(engine)
    with uow(engine) as u:
        pv = minutes.minutes(u, dt.date(2026, 12, 3))
    data = minutes.minutes_pdf(pv, created=NOW)
    assert data.startswith(b"%PDF-")
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
    flat = " ".join(text.split())
    for expected in ("Fonds ODD 17 — procès-verbal du comité", "Séance du 3 décembre 2026",
                     f"{a} —", "accord", "120 000,50 €", "Alliance solide, budget réduit.",
                     "<script>alert(1)</script> & [b]gras[/b] **x** {{ y }} %s<U+000B> ;",
                     "éàçœ « € »", "Récusé : m4@comite.example.org — intérêt déclaré",
                     f"{b} —", "refus"):
        assert " ".join(expected.split()) in flat, expected
    empty = minutes.minutes_pdf(minutes.Minutes(
        fund="F", date="2026-12-05", date_label="5 décembre 2026", present=[], decisions=[],
        approved_total="0.00"), created=NOW)
    assert "Aucune décision" in PdfReader(io.BytesIO(empty)).pages[0].extract_text()
