"""« Mes jetons d'API » in a real browser: from « Mon espace », create a token (its secret shown
once, and it works on the API), then revoke it. axe-core on each page, no horizontal scroll on
a phone, no CSP violation logged."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect

from tests.factories import eligible
from tests.web.conftest import LiveServer
from tests.web.helpers import axe_check, horizontal_overflow, screenshot
from tests.web.test_applicant_journey import sign_in
from tests.webutil import STAFF, Clock, add_people, uow_at


def test_the_api_tokens_page(live_server: LiveServer, page: Page) -> None:
    eligible(live_server.engine, 1)
    with uow_at(live_server.engine, Clock()) as uow:
        add_people(uow)
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text)
            if "Content Security Policy" in m.text else None)

    sign_in(page, live_server, STAFF["manager"])
    page.get_by_role("link", name="Mes jetons d'API").click()
    expect(page.locator("h1")).to_have_text("Mes jetons d'API")
    axe_check(page)

    page.get_by_label("Nom du jeton").fill("Export du lundi")
    page.get_by_role("button", name="Créer le jeton").click()
    expect(page.locator("h1")).to_have_text("Jeton créé")
    secret = page.get_by_label("Secret du jeton").input_value()
    assert secret.startswith("odd17_") and "odd17_" not in page.url
    axe_check(page)
    screenshot(page, "30-jeton-cree")
    page.set_viewport_size({"width": 360, "height": 740})
    assert horizontal_overflow(page) == 0  # a long secret wraps on a phone
    api = httpx.get(live_server.url("/api/v1/applications"),
                    headers={"Authorization": f"Bearer {secret}"})
    assert api.status_code == 200

    page.get_by_role("link", name="Retour à mes jetons").click()
    assert secret not in page.content()
    page.get_by_role("button", name="Révoquer le jeton « Export du lundi »").click()
    expect(page.get_by_role("status")).to_contain_text("Jeton révoqué")
    axe_check(page)
    assert horizontal_overflow(page) == 0
    screenshot(page, "31-jetons")
    assert httpx.get(live_server.url("/api/v1/applications"),
                     headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    assert not blocked, blocked
