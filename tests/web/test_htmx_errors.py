"""A form sent by htmx that gets an error answer (4xx) shows its French error in the page:
htmx 2 does not swap 4xx answers by default, so the portal's config (static/odd17.js) swaps
them and the server points the swap at the page's <main> (HX-Retarget, HX-Reselect)."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.web.conftest import LiveServer
from tests.web.helpers import axe_check
from tests.web.test_applicant_journey import sign_in

LEAD = "direction@passerelles.example.org"


def test_an_invalid_htmx_form_shows_its_french_error(live_server: LiveServer,
                                                     page: Page) -> None:
    sign_in(page, live_server, LEAD)
    page.get_by_role("link", name="Voir les appels ouverts").click()
    page.get_by_role("button", name="Commencer un dossier").first.click()
    expect(page.locator("h1")).to_have_text("Nouveau dossier")
    page.locator("#f-title").fill("Alliance\u0001 pour l'emploi")  # refused by save_draft
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Ajouter un partenaire").click()
    assert answer.value.status == 400 and answer.value.request.headers.get("hx-request")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("caractère de contrôle interdit")
    expect(page.locator("h1")).to_have_count(1)  # the page's <main> replaced, not nested
    axe_check(page)
