"""The reviewer's and the committee's workspaces (odd17/web/reviewing.py) through HTTP: the
list with due dates, the scoring form saved then submitted (final afterwards), 404 for an
application not assigned or recused, CSRF on each POST, the wrong role refused, the
committee's session (quorum, recusals, decisions, a reject without motivation refused, the
envelope short shown as such) and the minutes as a page and a PDF."""

from __future__ import annotations

import html
import io
import re
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader
from sqlalchemy import Engine, select

from models import Application, Decision, Recusal, Review, Status
from odd17.services import choosing, sessions_committee
from odd17.settings import reset_caches
from tests.factories import eligible, in_committee
from tests.review_support import NOW, runner, uow
from tests.test_choosing_comments import HOSTILE
from tests.test_choosing_comments import people as reviewers_people
from tests.test_review_cycle import people as committee_people
from tests.webutil import Clock, client, form_token, open_session, with_cookie

R0, R2 = "r0@eval.example.org", "r2@eval.example.org"
M = [f"m{i}@comite.example.org" for i in range(5)]  # m4: interest in the partner (recused)
FULL = {"pertinence": "4", "alliance": "5", "impact": "3", "innovation": "4", "modele": "3"}


@pytest.fixture
def clock() -> Clock:
    clock = Clock()
    clock.now = NOW
    return clock


def browser_of(engine: Engine, clock: Clock, address: str) -> TestClient:
    return with_cookie(client(engine, clock), open_session(engine, clock, address)[0])


def assigned(engine: Engine) -> str:
    ref, = eligible(engine, 1)
    reviewers_people(engine)
    with uow(engine) as u:
        choosing.assign_chosen(u, ref, [R0, "r1@eval.example.org"])
    return ref


def without_tokens(html: str) -> str:
    return re.sub(r'(content|value)="[A-Za-z0-9_-]{32,}"', "", html)


def notes(**scores: str) -> dict[str, str]:
    return {f"note-{name}": value for name, value in scores.items()}


# --- the reviewer ---------------------------------------------------------------------------

def test_list_shows_assigned_applications_with_due_dates(engine: Engine, clock: Clock) -> None:
    ref = assigned(engine)
    browser = browser_of(engine, clock, R0)
    page = browser.get("/evaluation")
    assert page.status_code == 200
    assert ref in page.text and "24/12/2026" in page.text and "en retard" not in page.text
    assert "à faire" in page.text and "Association Passerelles Mantoises" in page.text
    assert "Mes évaluations" in browser.get("/mon-espace").text
    clock.advance(days=22)  # a new session: the first one has expired
    assert "en retard" in browser_of(engine, clock, R0).get("/evaluation").text


def test_draft_saved_then_submitted_then_read_only(engine: Engine, clock: Clock) -> None:
    ref = assigned(engine)
    browser = browser_of(engine, clock, R0)
    form = browser.get(f"/evaluation/{ref}")
    assert form.status_code == 200 and 'name="note-pertinence"' in form.text
    assert "poids" in form.text and "Enregistrer" in form.text
    token = form_token(form.text)
    saved = browser.post(f"/evaluation/{ref}", data={
        **notes(pertinence="4", impact="2"), "comment": HOSTILE, "action": "save",
        "csrf_token": token})
    assert saved.status_code == 303 and saved.headers["location"].endswith("?fait=enregistre")
    again = browser.get(saved.headers["location"])
    assert "Évaluation enregistrée" in again.text and "brouillon" in again.text
    assert re.search(r'value="4" checked', again.text) and "<b>gras" not in again.text
    assert "&lt;b&gt;gras&lt;/b&gt; &amp; " in again.text
    # submitting with a criterion missing: refused, what was typed kept and saved
    missing = browser.post(f"/evaluation/{ref}", data={
        **notes(pertinence="4"), "comment": "Bien.", "action": "submit", "csrf_token": token})
    assert missing.status_code == 400 and "n'a pas été enregistrée" in missing.text
    bad = browser.post(f"/evaluation/{ref}", data={
        **notes(pertinence="9", impact="x"), "comment": "c", "action": "save",
        "csrf_token": token})
    assert bad.status_code == 400 and "nombre entier" in bad.text
    done = browser.post(f"/evaluation/{ref}", data={
        **notes(**FULL), "comment": "Projet solide.", "action": "submit", "csrf_token": token})
    assert done.status_code == 303 and done.headers["location"].endswith("?fait=rendue")
    final = browser.get(f"/evaluation/{ref}")
    assert "Votre évaluation (rendue le" in final.text and "<form method=\"post\" action=\"/eval" \
        not in final.text and 'name="note-' not in final.text
    with uow(engine) as u:
        review = u.session.scalars(select(Review).where(Review.scored_at.is_not(None))).one()
        assert review.comment == "Projet solide." and review.scores["alliance"] == 5
    refused = browser.post(f"/evaluation/{ref}", data={
        **notes(**{**FULL, "impact": "0"}), "comment": "autre", "action": "save",
        "csrf_token": token})
    assert refused.status_code == 400 and "définitive" in refused.text
    assert "<td>3 / 5</td>" in refused.text and "<td>0 / 5</td>" not in refused.text
    with uow(engine) as u:
        assert u.session.get(Review, review.id).scores["impact"] == 3  # type: ignore[union-attr]


def test_not_assigned_or_recused_is_the_missing_page(engine: Engine, clock: Clock) -> None:
    ref = assigned(engine)
    missing = browser_of(engine, clock, R0).get("/evaluation/FDS-2099-99999")
    assert missing.status_code == 404
    other = browser_of(engine, clock, R2)  # a reviewer, not designated for it
    answer = other.get(f"/evaluation/{ref}")
    assert answer.status_code == 404 and without_tokens(answer.text) == without_tokens(missing.text)
    token = form_token(other.get("/mon-espace").text)
    assert other.post(f"/evaluation/{ref}", data={"csrf_token": token, "action": "save"}
                      ).status_code == 404
    with uow(engine) as u:
        app = u.session.scalars(select(Application)).one()
        review = u.session.scalars(select(Review).join(Review.reviewer).where(
            Review.application_id == app.id)).first()
        assert review is not None
        u.session.add(Recusal(application_id=app.id, reviewer_id=review.reviewer_id,
                              reason="déclaré après coup", at=NOW))
        email = review.reviewer.email
    recused = browser_of(engine, clock, email)
    assert without_tokens(recused.get(f"/evaluation/{ref}").text) == \
        without_tokens(missing.text)
    assert ref not in recused.get("/evaluation").text


def test_anonymous_fund_hides_the_lead_on_both_pages(engine: Engine, clock: Clock, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    ref = assigned(engine)
    with uow(engine) as u:
        lead = u.session.scalars(select(Application)).one().lead
        identity = [lead.name, lead.siret]
    browser = browser_of(engine, clock, R0)
    shown = browser.get(f"/evaluation/{ref}").text + browser.get("/evaluation").text
    assert all(html.escape(i) in shown for i in identity if i)
    default = (Path(__file__).parent.parent / "odd17/data/fund.toml").read_text()
    anonymous = tmp_path / "fund.toml"
    anonymous.write_text(default.replace("[review]\n", "[review]\nanonymous = true\n", 1))
    monkeypatch.setenv("ODD17_FUND_CONFIG", str(anonymous))
    reset_caches()
    try:
        shown = browser.get(f"/evaluation/{ref}").text + browser.get("/evaluation").text
    finally:
        monkeypatch.delenv("ODD17_FUND_CONFIG")
        reset_caches()
    assert ref in shown and "anonyme (le fonds masque" in shown
    assert not [i for i in identity if i and html.escape(i) in shown]


def test_posts_without_csrf_and_wrong_roles_are_refused(engine: Engine, clock: Clock) -> None:
    ref = assigned(engine)
    committee_people(engine)
    browser = browser_of(engine, clock, R0)
    forged = browser.post(f"/evaluation/{ref}", data={**notes(**FULL), "action": "submit",
                                                      "comment": "x", "csrf_token": "faux"})
    assert forged.status_code == 403 and "expiré" in forged.text
    with uow(engine) as u:
        assert u.session.scalars(select(Review).where(Review.draft_saved_at.is_not(None))
                                 ).first() is None
    for path in ("/comite", "/comite/proces-verbal", "/comite/proces-verbal.pdf"):
        assert browser.get(path).status_code == 403
    member = browser_of(engine, clock, M[0])
    assert member.get("/evaluation").status_code == 403
    assert member.get(f"/evaluation/{ref}").status_code == 403
    forged = member.post("/comite/decisions", data={"reference": ref, "outcome": "defer",
                                                    "present": M[:3]})
    assert forged.status_code == 403
    anonymous = client(engine, clock)
    assert anonymous.get("/evaluation").status_code == 303
    assert anonymous.get("/comite").status_code == 303


# --- the committee --------------------------------------------------------------------------

def session_url(present: list[str]) -> str:
    return "/comite?" + "&".join(f"present={p}" for p in present)


def test_session_page_quorum_and_recusals(engine: Engine, clock: Clock) -> None:
    a, b = in_committee(engine, 2)
    committee_people(engine)
    browser = browser_of(engine, clock, M[0])
    assert "Séance du comité" in browser.get("/mon-espace").text
    first = browser.get("/comite")
    assert first.status_code == 200 and a in first.text and b in first.text
    assert first.text.count("non atteint") == 2 and 'name="present"' in first.text
    assert "intérêt déclaré dans" in first.text  # m4 recused, and why
    enough = browser.get(session_url(M[:3]))
    assert enough.text.count("<strong class=\"\">atteint") == 2
    assert enough.text.count('type="checkbox" id="present-1" name="present" '
                             f'value="{M[0]}" checked') == 1
    unknown = browser.get(session_url(["x@y.example.org"]))
    assert unknown.status_code == 400 and "ne sont pas membres du comité" in unknown.text


def test_decisions_approve_with_french_amount_reject_and_defer(engine: Engine,
                                                               clock: Clock) -> None:
    a, b, c = in_committee(engine, 3, requested="100000.00")
    committee_people(engine)
    browser = browser_of(engine, clock, M[0])
    token = form_token(browser.get("/comite").text)

    def decide(ref: str, outcome: str, **extra: object) -> httpx.Response:
        return browser.post("/comite/decisions", data={
            "reference": ref, "outcome": outcome, "present": M[:3], "csrf_token": token,
            **extra})

    too_much = decide(a, "approve", amount="100 000,01")
    assert too_much.status_code == 400 and "Décision non enregistrée" in too_much.text \
        and a in too_much.text
    typo = decide(a, "approve", amount="70.000,5")
    assert typo.status_code == 400 and "montant invalide" in typo.text
    done = decide(a, "approve", amount="70 000,50")
    assert done.status_code == 303
    shown = browser.get(done.headers["location"])
    assert f"{a} : accordé" in shown.text
    no_motif = decide(b, "reject", motif="   ")
    assert no_motif.status_code == 400 and "motivé" in no_motif.text
    assert decide(b, "reject", motif=HOSTILE).status_code == 303
    assert decide(c, "defer").status_code == 303
    no_quorum = browser.post("/comite/decisions", data={
        "reference": c, "outcome": "defer", "present": M[:1], "csrf_token": token})
    assert no_quorum.status_code == 400 and "quorum" in no_quorum.text
    with uow(engine) as u:
        apps = {x.reference: x for x in u.session.scalars(select(Application))}
        assert apps[a].status == Status.approved and apps[b].status == Status.rejected
        decisions = u.session.scalars(select(Decision).order_by(Decision.id)).all()
        assert decisions[0].amount == Decimal("70000.50") and decisions[0].recorded_by \
            == f"web:{M[0]}"
        assert decisions[1].motif == HOSTILE.strip()
    assert browser.post("/comite/decisions", data={
        "reference": "FDS-2099-99999", "outcome": "defer", "present": M[:3],
        "csrf_token": token}).status_code == 404


def test_envelope_short_is_shown_as_such(engine: Engine, clock: Clock) -> None:
    refs = in_committee(engine, 11, requested="200000.00")
    committee_people(engine)
    run = runner(engine)
    for ref in refs[:10]:  # the whole envelope
        sessions_committee.decide(run, ref, "approve", present=M[:3], amount=None, motif="")
    browser = browser_of(engine, clock, M[0])
    token = form_token(browser.get("/comite").text)
    short = browser.post("/comite/decisions", data={
        "reference": refs[10], "outcome": "approve", "present": M[:3], "csrf_token": token})
    assert short.status_code == 409
    shown = html.unescape(short.text)
    assert "l'enveloppe est insuffisante" in shown and "ne permet pas d'engager" in shown
    with uow(engine) as u:
        app = u.session.scalars(select(Application).where(
            Application.reference == refs[10])).one()
        assert app.status == Status.committee


def test_minutes_page_and_pdf(engine: Engine, clock: Clock) -> None:
    a, b = in_committee(engine, 2)
    committee_people(engine)
    run = runner(engine)
    sessions_committee.decide(run, a, "approve", present=M, amount=Decimal("80000"), motif="")
    sessions_committee.decide(run, b, "reject", present=M[:3], amount=None, motif=HOSTILE)
    browser = browser_of(engine, clock, M[0])
    page = browser.get("/comite/proces-verbal?date=2026-12-03")
    assert page.status_code == 200 and "3 décembre 2026" in page.text
    assert a in page.text and b in page.text and "&lt;b&gt;gras" in page.text
    assert "<b>gras" not in page.text
    empty = browser.get("/comite/proces-verbal?date=2026-12-04")
    assert "Aucune décision enregistrée ce jour." in empty.text
    bad = browser.get("/comite/proces-verbal?date=03/12/2026")
    assert bad.status_code == 400 and "AAAA-MM-JJ" in bad.text
    pdf = browser.get("/comite/proces-verbal.pdf?date=2026-12-03")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"] == \
        'attachment; filename="proces-verbal-2026-12-03.pdf"'
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
    assert a in text and "3 décembre 2026" in text
    assert browser.get("/comite/proces-verbal.pdf?date=x").status_code == 400
