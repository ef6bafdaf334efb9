"""The fund manager's page of the Prefect runs in a real browser: reached from the board, a
completed and a failed run of the session's Prefect test server, axe-core, and readable on a
phone."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from prefect import flow

from flows.common import local_runs
from flows.outbox import outbox_flow
from tests.web.conftest import LiveServer
from tests.web.helpers import axe_check, horizontal_overflow, screenshot
from tests.web.test_applicant_journey import sign_in
from tests.webutil import STAFF, Clock, add_people, uow_at


@flow(name="outbox", persist_result=False)
def failing_outbox() -> None:
    raise RuntimeError("le serveur SMTP a refusé la connexion")


@pytest.mark.usefixtures("prefect_server")
def test_the_runs_page(live_server: LiveServer, page: Page) -> None:
    with uow_at(live_server.engine, Clock()) as uow:
        add_people(uow)
    with local_runs():
        outbox_flow(return_state=True)
        failing_outbox(return_state=True)
    page.set_viewport_size({"width": 1000, "height": 800})
    sign_in(page, live_server, STAFF["manager"])
    page.get_by_role("link", name="Gestion des dossiers").click()
    page.get_by_role("link", name="Exécutions des traitements automatiques").click()
    expect(page.locator("h1")).to_have_text("Exécutions des traitements automatiques")
    expect(page.locator("table")).to_contain_text("en échec")
    expect(page.locator("table")).to_contain_text("terminée")
    expect(page.get_by_role("link", name="Ouvrir l'interface de Prefect")).to_be_visible()
    axe_check(page)
    screenshot(page, "22-gestion-executions")
    page.set_viewport_size({"width": 390, "height": 800})
    page.reload()
    assert horizontal_overflow(page) == 0  # readable on a phone
