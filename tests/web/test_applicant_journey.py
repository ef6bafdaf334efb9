"""The applicant's journey in a real browser (issue 13): a new association asks for a sign-in
link, reads it from the ``.eml`` folder, signs in, fills the form with an error then fixes it,
attaches files, saves, invites a partner who signs in (another browser) and edits, submits,
sees the verdict, withdraws. axe-core on each page; screenshots for the README's guide."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, expect

from tests.web.conftest import LiveServer
from tests.web.helpers import axe_check, horizontal_overflow, screenshot
from tests.web.helpers import links as links_of

LEAD = "direction@passerelles.example.org"
PARTNER = "contact@seine-aval.example.org"


def pdf(text: str) -> bytes:
    return b"%PDF-1.7\n" + text.encode() + b"\n%%EOF\n"


def sign_in(page: Page, server: LiveServer, address: str, shots: str = "") -> None:
    page.goto(server.url("/connexion"))
    page.get_by_label("Adresse e-mail").fill(address)
    if shots:
        axe_check(page)
        screenshot(page, f"{shots}-connexion")
    page.get_by_role("button", name="Recevoir un lien de connexion").click()
    expect(page.locator("h1")).to_contain_text("Consultez votre messagerie")
    link = server.mailbox.link(address, "/connexion/")  # on ODD17_PUBLIC_URL: its path here
    page.goto(server.url("/" + link.split("/", 3)[3]))
    page.get_by_role("button", name="Me connecter").click()
    expect(page.locator("h1")).to_have_text("Mon espace")


def fill_organisation(page: Page, prefix: str, name: str, kind: str, siret: str) -> None:
    page.locator(f"#f-{prefix}-name").fill(name)
    page.locator(f"#f-{prefix}-kind").select_option(kind)
    page.locator(f"#f-{prefix}-siret").fill(siret)


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

    # the form, with one mistake (an amount that is not one)
    page.locator("#f-title").fill("Alliance pour l'emploi des jeunes du Mantois")
    page.locator("#f-summary").fill("Une association, une entreprise et une collectivité "
                                    "co-construisent un parcours.")
    page.get_by_label("Expérimentation").check()
    page.get_by_label("Dialogue").check()
    page.get_by_label("Co-construction").check()
    fill_organisation(page, "lead", "Association Passerelles Mantoises", "association",
                      "52601815590833")
    page.locator("#f-lead-email").fill(LEAD)
    for row, (name, kind, siret) in enumerate((
            ("Logistique Seine Aval SAS", "entreprise", "01661318460910"),
            ("Communauté urbaine GPS&O", "collectivite", "39099603108249"))):
        page.get_by_role("button", name="Ajouter un partenaire").click()  # htmx: the group only
        fill_organisation(page, f"partners-{row}", name, kind, siret)
    page.evaluate("() => { window.sameDocument = true; }")
    page.get_by_role("button", name="Ajouter un cofinancement").click()
    expect(page.locator("#f-cofunding-0-funder")).to_be_visible()
    assert page.evaluate("() => window.sameDocument === true")  # htmx swapped the group only
    page.locator("#f-cofunding-0-funder").fill("GPS&O")
    page.locator("#f-cofunding-0-kind").select_option("collectivite")
    page.locator("#f-cofunding-0-amount").fill("90 000")
    page.locator("#f-territory-department").select_option("78")
    page.locator("#f-requested_amount").fill("120 000,OO")  # letters O, not zeros
    page.locator("#f-total_budget").fill("310 000")
    page.locator("#f-start_date").fill("2027-03-01")
    page.locator("#f-duration_months").fill("24")
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

    for kind, name in (("statuts", "statuts.pdf"), ("budget_previsionnel", "budget.pdf"),
                       ("rib", "rib.pdf")):
        page.get_by_label("Type de pièce").select_option(kind)
        page.get_by_label("Fichier").set_input_files(
            {"name": name, "mimeType": "application/pdf", "buffer": pdf(kind)})
        page.get_by_role("button", name="Joindre la pièce").click()
        expect(page.locator("[role=status]")).to_contain_text("Pièce jointe")
        expect(page.locator("table")).to_contain_text(name)
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
