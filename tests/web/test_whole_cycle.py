"""The whole cycle in a real browser (issue 14), every action through the pages: an applicant
applies, the manager designates two reviewers, both score, the committee approves with its
quorum, finance records the first tranche. At each step, exactly the emails that step must send
are in the ``.eml`` folder (recipient and subject, each once), and the page the person sees
shows the new state (French status labels, French amounts). The staff are set up as
``odd17 users add`` and ``odd17 reviewers add`` do (no page creates them)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest
from playwright.sync_api import Browser, Page, expect

from odd17.services import accounts, reviewers
from odd17.services.reviewers import ReviewerIn
from odd17.uow import Context, Runner
from tests.factories import make_siret
from tests.web.conftest import LiveServer
from tests.web.helpers import (
    attach_documents,
    axe_check,
    fill_application,
    local,
    sign_in,
)

LEAD = "direction@passerelles.example.org"
MANAGER, FINANCE = "charge@fonds.example.org", "finance@fonds.example.org"
REVIEWERS = ["r0@eval.example.org", "r1@eval.example.org", "r2@eval.example.org"]
MEMBERS = ["m0@comite.example.org", "m1@comite.example.org", "m2@comite.example.org"]
NOTES = {"pertinence": 4, "alliance": 5, "impact": 3, "innovation": 4, "modele": 3}
CONNEXION = "Votre lien de connexion au portail du Fonds ODD 17"


@pytest.fixture
def staff(live_server: LiveServer) -> LiveServer:
    """A manager and a finance officer (accounts), three reviewers and three committee
    members (the reviewers' register), none in conflict with the applicant's organisations."""
    with Runner(live_server.engine, Context.from_settings("test:staff")).uow() as uow:
        accounts.add_user(uow, MANAGER, "manager")
        accounts.add_user(uow, FINANCE, "finance")
        for i, address in enumerate(REVIEWERS):
            reviewers.add_reviewer(uow, ReviewerIn(name=f"Évaluateur {i}", email=address,
                                                   siren=make_siret(600 + i)[:9]))
        for i, address in enumerate(MEMBERS):
            reviewers.add_reviewer(uow, ReviewerIn(name=f"Membre {i}", email=address,
                                                   siren=make_siret(700 + i)[:9],
                                                   committee=True, reviews=False))
    return live_server


class Steps:
    """The people's browsers, the mail sent so far, the kinds of page axe-core has checked."""

    def __init__(self, server: LiveServer, browser: Browser) -> None:
        self.server, self.browser = server, browser
        self.seen = 0
        self.checked: set[str] = set()

    @contextmanager
    def person(self, address: str) -> Iterator[Page]:
        """A browser of their own, signed in by the emailed link (that email counted)."""
        context = self.browser.new_context(viewport={"width": 1000, "height": 800})
        try:
            page = context.new_page()
            sign_in(page, self.server, address)
            self.sent([(address, CONNEXION)])
            self.axe(page, "mon-espace")
            yield page
        finally:
            context.close()

    def sent(self, expected: list[tuple[str, str]]) -> None:
        """Exactly these emails since the last check, each once."""
        found = self.server.mailbox.sent_since(self.seen)
        assert found == sorted((to.casefold(), subject) for to, subject in expected), found
        self.seen += len(found)

    def axe(self, page: Page, kind: str) -> None:
        """axe-core on the first page of each kind (the same template needs no second run)."""
        if kind not in self.checked:
            self.checked.add(kind)
            axe_check(page)


def status(page: Page) -> str:
    return page.locator(".status").first.inner_text()


def test_the_whole_cycle(staff: LiveServer, browser: Browser) -> None:
    steps = Steps(staff, browser)
    with ExitStack() as stack:
        applicant = stack.enter_context(steps.person(LEAD))
        ref = apply(steps, applicant)
        dossier = local(staff.mailbox.link(LEAD, "/dossiers/"))  # the eligibility email's link
        assert dossier == f"/dossiers/{ref}"

        def applicant_sees(label: str) -> None:
            applicant.goto(staff.url(dossier))
            assert status(applicant) == label
        assign(steps, ref)
        applicant_sees("en instruction")
        for address in REVIEWERS[:2]:
            score(steps, ref, address)
        applicant_sees("en comité")
        approve(steps, ref)
        applicant_sees("approuvé")
        main = applicant.locator("main")
        expect(main).to_contain_text("Accordé — montant accordé : 100 000,00 €")
        expect(main).to_contain_text("Accordée : 100 000,00 € ; versée : 0,00 €")
        pay(steps, ref)
        applicant_sees("en cours")
        expect(main).to_contain_text("versée : 50 000,00 €")
        expect(applicant.get_by_role("row", name="1. signature de la convention")
               ).to_contain_text("50 000,00 € le ")
        applicant.get_by_role("link", name="Mon espace", exact=True).click()
        row = applicant.locator("tr", has=applicant.get_by_role("link", name=ref))
        expect(row.locator(".status")).to_have_text("en cours")
    assert staff.mailbox.sent_since(steps.seen) == []  # nothing left to send, nothing twice
    assert steps.checked == {"mon-espace", "appels", "brouillon", "dossier", "gestion-tableau",
                             "gestion-dossier", "evaluation-liste", "evaluation-dossier",
                             "comite", "finances", "finances-tranches"}


def apply(steps: Steps, page: Page) -> str:
    """A draft, its documents, submitted: « éligible », received then eligible by email."""
    page.get_by_role("link", name="Voir les appels ouverts").click()
    steps.axe(page, "appels")
    page.get_by_role("button", name="Commencer un dossier").first.click()
    fill_application(page, LEAD, "120 000,00")
    page.get_by_role("button", name="Enregistrer le brouillon").click()
    expect(page.locator("[role=status]")).to_contain_text("Il est complet")
    attach_documents(page)
    steps.axe(page, "brouillon")
    page.get_by_role("button", name="Déposer le dossier").click()
    expect(page.locator("h1")).to_contain_text("Dossier ODD17-")
    ref = page.locator("h1").inner_text().removeprefix("Dossier ")
    assert status(page) == "éligible"
    steps.axe(page, "dossier")
    steps.sent([(LEAD, f"[{ref}] Accusé de réception de votre dossier"),
                (LEAD, f"[{ref}] Votre dossier est éligible")])
    return ref


def assign(steps: Steps, ref: str) -> None:
    """The manager chooses two of the three reviewers: « en instruction », each told once."""
    with steps.person(MANAGER) as page:
        page.get_by_role("link", name="Gestion des dossiers").click()
        expect(page.locator("table")).to_contain_text("éligible")
        steps.axe(page, "gestion-tableau")
        page.get_by_role("link", name=ref).click()
        expect(page.locator("h1")).to_have_text(f"Dossier {ref}")
        assert status(page) == "éligible"
        for address in REVIEWERS[:2]:
            page.get_by_label(f"({address})", exact=False).check()
        page.get_by_role("button", name="Désigner les évaluateurs choisis").click()
        expect(page.get_by_role("status")).to_contain_text("Évaluateurs désignés")
        assert status(page) == "en instruction"
        expect(page.locator("table", has_text="Évaluations")).to_contain_text(REVIEWERS[1])
        steps.axe(page, "gestion-dossier")
        steps.sent([(r, f"[{ref}] Un dossier vous est confié pour évaluation")
                    for r in REVIEWERS[:2]])


def score(steps: Steps, ref: str, address: str) -> None:
    """A reviewer's notes, submitted; the last one sends the application to the committee
    (no email)."""
    with steps.person(address) as page:
        page.get_by_role("link", name="Mes évaluations").click()
        expect(page.locator("tr", has_text=ref)).to_contain_text("à faire")
        steps.axe(page, "evaluation-liste")
        page.get_by_role("link", name=ref).click()
        for name, value in NOTES.items():
            page.locator(f"input[name='note-{name}'][value='{value}']").check()
        page.get_by_label("Commentaire").fill("Alliance solide ; impact à préciser.")
        page.get_by_role("button", name="Rendre l'évaluation").click()
        expect(page.get_by_role("status")).to_contain_text("Évaluation rendue")
        expect(page.locator("input[type=radio]")).to_have_count(0)  # final
        steps.axe(page, "evaluation-dossier")
        steps.sent([])


def approve(steps: Steps, ref: str) -> None:
    """Two of the three members present (quorum); 100 000,00 € of the 120 000,00 € asked."""
    with steps.person(MEMBERS[0]) as page:
        page.get_by_role("link", name="Séance du comité").click()
        section = page.get_by_role("region", name=ref, exact=False)
        expect(section).to_contain_text("120 000,00 €")
        expect(section.locator("dd strong")).to_have_text("non atteint")  # nobody ticked
        for address in MEMBERS[:2]:
            page.get_by_label(f"({address})", exact=False).check()
        page.get_by_role("button", name="Calculer le quorum").click()
        expect(page.locator("main")).to_contain_text("2 membre(s) présent(s) sur 3")
        section = page.get_by_role("region", name=ref, exact=False)
        expect(section.locator("dd strong")).to_have_text("atteint")
        section.get_by_label("Accorder").check()
        section.get_by_label("Montant accordé").fill("100 000,00")
        section.get_by_role("button", name="Enregistrer la décision").click()
        expect(page.get_by_role("status")).to_contain_text(f"{ref} : accordé")
        expect(page.locator("main")).to_contain_text("Aucun dossier en comité")
        steps.axe(page, "comite")
        steps.sent([(LEAD, f"[{ref}] Le comité accorde 100\u202f000,00\u00a0€ à votre "
                           "projet")])


def pay(steps: Steps, ref: str) -> None:
    """Tranche 1 (half, due on approval) paid in full; it leaves the tranches due."""
    with steps.person(FINANCE) as page:
        page.get_by_role("link", name="Espace finances").click()
        steps.axe(page, "finances")
        page.get_by_role("link", name="Tranches à verser").first.click()
        section = page.get_by_role("region", name=f"Versement : {ref}, tranche 1")
        expect(section).to_contain_text("50 000,00 €")
        section.get_by_label("Référence du paiement").fill("VIR-CYCLE-1")
        section.get_by_role("button", name="Enregistrer le versement").click()
        expect(page.get_by_role("status")).to_have_text("Versement enregistré.")
        expect(page.get_by_role("region", name=f"Versement : {ref}, tranche 1")).to_have_count(0)
        steps.axe(page, "finances-tranches")
        steps.sent([(LEAD, f"[{ref}] Versement de la tranche 1 : 50\u202f000,00\u00a0€")])


def test_every_decision_outcome_has_a_french_label() -> None:
    """The pages name a decision by its label: none may show its identifier (« approve »)."""
    from models import DecisionOutcome
    from rules.labels import decision_label

    labels = [decision_label(o.value) for o in DecisionOutcome]
    assert all(label[0].isupper() and label != o.value
               for label, o in zip(labels, DecisionOutcome, strict=True)), labels
    assert len(set(labels)) == len(labels)
