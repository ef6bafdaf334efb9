"""The applicant's journey in a real browser (issue 13): a new association asks for a sign-in
link, reads it from the ``.eml`` folder, signs in, fills the form with an error then fixes it,
attaches files, saves, invites a partner who signs in (another browser) and edits, submits,
sees the verdict, withdraws. axe-core on each page; screenshots for the README's guide."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, expect

from tests.web.conftest import LiveServer
from tests.web.helpers import (
    attach_documents,
    axe_check,
    fill_application,
    horizontal_overflow,
    screenshot,
    sign_in,
)
from tests.web.helpers import links as links_of

LEAD = "direction@passerelles.example.org"
PARTNER = "contact@seine-aval.example.org"


def test_the_applicant_journey(live_server: LiveServer, page: Page, browser: Browser) -> None:
    page.set_viewport_size({"width": 1000, "height": 800})
    sign_in(page, live_server, LEAD, shots="01")
    axe_check(page)
    screenshot(page, "02-mon-espace")

    page.get_by_role("link", name="Voir les appels ouverts").click()
    axe_check(page)
    screenshot(page, "03-appels")
    page.get_by_role("button", name="Commencer un dossier").first.click()
    expect(page.locator("h1")).to_have_text("Nouveau dossier")
    axe_check(page)

    fill_application(page, LEAD, "120 000,OO")  # one mistake: letters O, not zeros
    page.get_by_role("button", name="Enregistrer le brouillon").click()
    summary = page.locator("#erreurs")
    expect(summary).to_contain_text("Montant demandé")
    field = page.locator("#f-requested_amount")
    expect(field).to_have_attribute("aria-invalid", "true")
    described = field.get_attribute("aria-describedby") or ""
    expect(page.locator(f"#{described.split()[-1]}")).to_be_visible()
    axe_check(page)
    screenshot(page, "04-erreur", full_page=False)

    page.locator("#f-requested_amount").fill("120 000,00")
    page.get_by_role("button", name="Enregistrer le brouillon").click()
    expect(page.locator("[role=status]")).to_contain_text("Il est complet")
    expect(page.locator("#f-requested_amount")).to_have_value("120 000,00")

    attach_documents(page)
    axe_check(page)
    page.locator("#pieces").scroll_into_view_if_needed()
    screenshot(page, "05-pieces", full_page=False)

    page.get_by_label("Inviter un partenaire").fill(PARTNER)
    page.get_by_role("button", name="Envoyer l'invitation").click()
    expect(page.locator("[role=status]")).to_contain_text("Invitation envoyée")
    expect(page.locator("#co-porteurs + ul")).to_contain_text(PARTNER)
    draft_url = page.url.split("?")[0]

    # the partner, in a browser of their own: the invitation, a sign-in, an edit
    invitation = [u for u in links_of(live_server.mailbox.latest(PARTNER)) if "/brouillons/" in u]
    assert invitation and draft_url.endswith(invitation[0].split("/", 3)[3])
    other = browser.new_context(viewport={"width": 390, "height": 800})
    try:
        partner = other.new_page()
        sign_in(partner, live_server, PARTNER)
        partner.goto(live_server.url("/" + invitation[0].split("/", 3)[3]))
        partner.locator("#f-summary").fill("Une association, une entreprise et une "
                                           "collectivité co-construisent un parcours vers "
                                           "l'emploi.")
        partner.get_by_role("button", name="Enregistrer le brouillon").click()
        expect(partner.locator("[role=status]")).to_contain_text("Brouillon enregistré")
        assert horizontal_overflow(partner) == 0  # readable on a phone
        axe_check(partner)
        screenshot(partner, "06-co-porteur-telephone", full_page=False)
    finally:
        other.close()

    page.goto(draft_url)
    expect(page.locator("#f-summary")).to_contain_text("vers l'emploi")  # the partner's edit
    expect(page.locator(".history")).to_contain_text(PARTNER)
    page.get_by_role("button", name="Déposer le dossier").click()
    expect(page.locator("h1")).to_contain_text("Dossier ODD17-")
    expect(page.locator("[role=status]")).to_contain_text("déposé sous la référence")
    expect(page.locator("body")).to_contain_text("Dossier éligible")
    axe_check(page)
    screenshot(page, "07-verdict")
    # the verdict's email links to this very page (ODD17_PUBLIC_URL + /dossiers/<reference>)
    verdict = live_server.mailbox.link(LEAD, "/dossiers/")
    assert page.url.split("?")[0].endswith("/" + verdict.split("/", 3)[3])

    page.get_by_role("button", name="Retirer le dossier").click()  # no reason: refused
    expect(page.locator("#retrait-erreur")).to_contain_text("indiquez la raison du retrait")
    page.get_by_label("Raison du retrait").fill("Le partenaire principal se retire du projet.")
    page.get_by_role("button", name="Retirer le dossier").click()
    expect(page.locator("[role=status]")).to_contain_text("Votre dossier est retiré")
    expect(page.locator(".timeline")).to_contain_text("retiré")
    axe_check(page)
    screenshot(page, "08-retrait")
