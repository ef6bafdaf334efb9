"""The finance officer's journey in a real browser (issue 14): sign in, open the finance
workspace from « Mon espace », record a payment with a mistake then fixed, upload a bank
statement, read the ledger filtered (and a bad filter named beside its field). axe-core on
each page, no horizontal scroll on a phone, no CSP violation logged."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

from playwright.sync_api import Page, expect

from odd17.db import unit_of_work
from odd17.services import ledger
from rules.tranches import DEFAULT_PLAN
from tests.factories import as_uow, in_committee
from tests.web.conftest import LiveServer
from tests.web.helpers import axe_check, horizontal_overflow, screenshot, sign_in
from tests.webutil import STAFF, Clock, add_people, uow_at

NOW = dt.datetime.combine(dt.date.today() - dt.timedelta(days=20), dt.time(10), dt.UTC)


def test_the_finance_journey(live_server: LiveServer, page: Page, tmp_path: Path) -> None:
    engine = live_server.engine
    refs = in_committee(engine, 2)
    with unit_of_work(engine) as s:
        for ref in refs:
            ledger.approve(as_uow(s, now=NOW, actor="c"), ref, Decimal("100000"),
                           plan=DEFAULT_PLAN)
    with uow_at(engine, Clock()) as uow:
        add_people(uow)
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text)
            if "Content Security Policy" in m.text else None)

    page.set_viewport_size({"width": 1000, "height": 800})
    sign_in(page, live_server, STAFF["finance"])
    page.get_by_role("link", name="Espace finances").click()
    expect(page.locator("h1")).to_have_text("Situation de l'enveloppe")
    axe_check(page)
    screenshot(page, "20-finances")

    page.get_by_role("link", name="Tranches à verser").first.click()
    section = page.get_by_role("region", name=f"Versement : {refs[0]}, tranche 1")
    section.get_by_label("Montant versé").fill("12,345")
    section.get_by_label("Référence du paiement").fill("VIR-NAV-1")
    section.get_by_role("button", name="Enregistrer le versement").click()
    expect(page.locator(".error").first).to_contain_text("montant invalide « 12,345 »")
    axe_check(page)
    section = page.get_by_role("region", name=f"Versement : {refs[0]}, tranche 1")
    section.get_by_label("Montant versé").fill("20 000,50")
    section.get_by_role("button", name="Enregistrer le versement").click()
    expect(page.get_by_role("status")).to_have_text("Versement enregistré.")
    axe_check(page)
    screenshot(page, "21-finances-tranches")

    statement = tmp_path / "releve.jsonl"
    statement.write_text(json.dumps({"reference": refs[1], "tranche": 1,
                                     "payment_reference": "VIR-NAV-2",
                                     "date": dt.date.today().isoformat()}) + "\n"
                         + '{"reference": "ODD17-1999-9999"}\n', "utf-8")
    page.get_by_role("link", name="Relevé bancaire").click()
    page.get_by_label("Fichier du relevé").set_input_files(str(statement))
    page.get_by_role("button", name="Enregistrer les versements").click()
    expect(page.get_by_role("status")).to_contain_text("1 versement(s) enregistré(s)")
    axe_check(page)
    screenshot(page, "22-finances-releve")

    page.get_by_role("link", name="Grand livre").click()
    expect(page.locator("h1")).to_have_text("Grand livre")
    expect(page.locator("#resultats")).to_have_text("5 écritures")  # top-up, 2 commits, 2 payments
    page.get_by_label("Nature").select_option(label="Versement")
    page.get_by_label("Rechercher").fill(refs[1])
    page.get_by_role("button", name="Filtrer").click()
    expect(page.locator("#resultats")).to_have_text("1 écriture")
    expect(page.locator("tbody")).to_contain_text("VIR-NAV-2")
    axe_check(page)
    screenshot(page, "23-finances-grand-livre")
    page.goto(live_server.url("/finances/grand-livre?start=31/02/2027"))
    expect(page.locator("#gl-start-e")).to_contain_text("date invalide « 31/02/2027 »")
    expect(page.locator("#resultats")).to_have_text("5 écritures")
    axe_check(page)

    page.set_viewport_size({"width": 360, "height": 740})
    for path in ("/finances", "/finances/tranches", "/finances/releve", "/finances/grand-livre"):
        page.goto(live_server.url(path))
        assert horizontal_overflow(page) == 0, path  # readable on a phone
    assert not blocked, blocked
