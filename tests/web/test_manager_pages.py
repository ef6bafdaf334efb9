"""The fund manager's workspace in a real browser (issue 14): from « Mon espace » to the board,
a filter, an application's page, an internal comment; axe-core on each page, and the board
readable on a phone."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.factories import eligible
from tests.web.conftest import LiveServer
from tests.web.helpers import axe_check, horizontal_overflow, screenshot, sign_in
from tests.webutil import STAFF, Clock, add_people, uow_at


def test_the_manager_pages(live_server: LiveServer, page: Page) -> None:
    refs = eligible(live_server.engine, 2)
    with uow_at(live_server.engine, Clock()) as uow:
        add_people(uow)
    page.set_viewport_size({"width": 1000, "height": 800})
    sign_in(page, live_server, STAFF["manager"])
    page.get_by_role("link", name="Gestion des dossiers").click()
    expect(page.locator("h1")).to_have_text("Tableau des dossiers")
    expect(page.locator("table")).to_contain_text(refs[1])
    axe_check(page)
    screenshot(page, "20-gestion-tableau")

    page.get_by_label("Rechercher").fill("n°0")
    page.get_by_role("button", name="Filtrer").click()
    expect(page.locator("#resultats")).to_have_text("1 dossier")
    page.get_by_role("link", name=refs[0]).click()
    expect(page.locator("h1")).to_have_text(f"Dossier {refs[0]}")
    axe_check(page)

    page.get_by_label("Commentaire interne").fill("Budget à vérifier avec le porteur.")
    page.get_by_role("button", name="Ajouter le commentaire").click()
    expect(page.locator("[role=status]")).to_contain_text("Commentaire interne enregistré")
    expect(page.locator(".timeline")).to_contain_text("Budget à vérifier")
    axe_check(page)
    screenshot(page, "21-gestion-dossier")

    page.get_by_role("link", name="Réévaluer l'éligibilité").click()
    expect(page.locator("[role=status]")).to_contain_text("Le statut ne changera pas")
    axe_check(page)
    page.get_by_role("button", name="Confirmer la réévaluation").click()
    expect(page.locator("[role=status]")).to_contain_text("Éligibilité réévaluée")

    page.set_viewport_size({"width": 390, "height": 800})
    for path in ("/gestion", f"/gestion/dossiers/{refs[0]}"):
        page.goto(live_server.url(path))
        assert horizontal_overflow(page) == 0, path  # readable on a phone
