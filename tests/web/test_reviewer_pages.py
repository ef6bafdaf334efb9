"""A reviewer in a real browser (issue 14): signs in, opens their assigned application, notes
some criteria and saves the draft, comes back, finishes and submits it; the page is then
read-only. axe-core on each page, and no horizontal scroll on a phone."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.web.conftest import LiveServer
from tests.web.helpers import axe_check, horizontal_overflow, screenshot, sign_in

R0 = "r0@eval.example.org"
NOTES = {"pertinence": 4, "alliance": 5, "impact": 3, "innovation": 4, "modele": 3}


def test_a_reviewer_saves_a_draft_then_submits(live_server: LiveServer, page: Page) -> None:
    from tests.test_web_reviewing import assigned

    ref = assigned(live_server.engine)
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    sign_in(page, live_server, R0)
    page.get_by_role("link", name="Mes évaluations").click()
    expect(page.locator("h1")).to_have_text("Mes évaluations")
    axe_check(page)
    page.get_by_role("link", name=ref).click()
    expect(page.locator("h1")).to_have_text(f"Évaluation du dossier {ref}")
    axe_check(page)
    assert horizontal_overflow(page) == 0

    page.get_by_role("group", name="pertinence").get_by_label("4", exact=False).first.check()
    page.get_by_label("Commentaire").fill("Alliance solide ; impact à préciser.")
    page.get_by_role("button", name="Enregistrer").click()
    expect(page.get_by_role("status")).to_contain_text("Évaluation enregistrée")
    axe_check(page)
    screenshot(page, "20-evaluation-brouillon", full_page=False)

    for name, value in NOTES.items():
        page.locator(f"input[name='note-{name}'][value='{value}']").check()
    page.get_by_role("button", name="Rendre l'évaluation").click()
    expect(page.get_by_role("status")).to_contain_text("Évaluation rendue")
    expect(page.locator("input[type=radio]")).to_have_count(0)  # read-only from now on
    expect(page.locator("main")).to_contain_text("Alliance solide ; impact à préciser.")
    axe_check(page)


def test_the_committee_session_page_is_accessible(live_server: LiveServer, page: Page) -> None:
    from tests.factories import in_committee
    from tests.test_review_cycle import people

    ref, _ = in_committee(live_server.engine, 2)
    people(live_server.engine)
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, live_server, "m0@comite.example.org")
    page.get_by_role("link", name="Séance du comité").click()
    for i in range(3):
        page.get_by_label(f"M{i} (m{i}@comite.example.org)").check()
    page.get_by_role("button", name="Calculer le quorum").click()
    expect(page.locator("main")).to_contain_text("3 membre(s) présent(s) sur 5")
    axe_check(page)
    assert horizontal_overflow(page) == 0
    section = page.locator("section", has=page.locator(f"#o-{ref}-reject"))
    section.get_by_label("Motivation").fill("Budget à revoir.")
    section.get_by_label("Refuser").check()
    section.get_by_role("button", name="Enregistrer la décision").click()
    expect(page.get_by_role("status")).to_contain_text(f"{ref} : refusé")
    page.get_by_role("link", name="Procès-verbal du jour").click()
    expect(page.locator("main")).to_contain_text("Budget à revoir.")
    axe_check(page)
