"""The home page in a real browser: French, UTF-8, accessible (axe-core, keyboard), readable on a
phone, htmx loaded from the project's own files under a strict Content-Security-Policy."""

from __future__ import annotations

import re

from playwright.sync_api import Page, Route

from tests.web.conftest import LiveServer
from tests.web.helpers import axe_check, horizontal_overflow, screenshot

STRICT_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
              "object-src 'none'; base-uri 'none'; frame-ancestors 'none'")


def test_home_is_french_utf8_and_accessible(live_server: LiveServer, page: Page) -> None:
    response = page.goto(live_server.url("/"))
    assert response is not None and response.status == 200
    content_type = response.headers["content-type"].replace(" ", "").lower()
    assert content_type == "text/html;charset=utf-8"
    assert page.locator("html").get_attribute("lang") == "fr"
    assert page.title()
    assert page.locator("h1").count() == 1
    axe_check(page)
    screenshot(page, "accueil")


def test_home_fits_a_phone(live_server: LiveServer, page: Page) -> None:
    page.set_viewport_size({"width": 375, "height": 667})
    page.goto(live_server.url("/"))
    assert horizontal_overflow(page) == 0
    page.set_viewport_size({"width": 320, "height": 568})  # the narrowest phones still in use
    assert horizontal_overflow(page) == 0


def test_skip_link_is_first_and_reaches_the_content(live_server: LiveServer,
                                                    page: Page) -> None:
    page.goto(live_server.url("/"))
    page.keyboard.press("Tab")
    focused = page.locator(":focus")
    assert focused.get_attribute("href") == "#contenu"
    assert focused.inner_text() == "Aller au contenu"
    box = focused.bounding_box()  # shown on screen once focused, not only to screen readers
    assert box is not None and box["x"] >= 0 and box["y"] >= 0 and box["width"] > 0
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "contenu"
    assert page.url.endswith("#contenu")


def _with_csp(route: Route) -> None:
    response = route.fetch()
    route.fulfill(response=response,
                  headers={**response.headers, "content-security-policy": STRICT_CSP})


def test_htmx_runs_under_a_strict_csp(live_server: LiveServer, page: Page) -> None:
    """htmx is served by the portal itself (no CDN) and needs no inline script or style: with
    the CSP the portal is meant to send, the page raises no violation and htmx is there."""
    violations: list[str] = []
    page.on("console", lambda msg: violations.append(msg.text)
            if re.search(r"Content.Security.Policy", msg.text) else None)
    page.route(f"{live_server.base}/**", _with_csp)
    page.goto(live_server.url("/"))
    page.wait_for_function("() => typeof window.htmx === 'object'")
    assert page.evaluate("() => htmx.version").startswith("2.")
    assert page.evaluate("() => htmx.config.includeIndicatorStyles") is False
    external = page.evaluate("""() => [...document.querySelectorAll('script, link[href]')]
        .map(e => e.src || e.href).filter(u => u && !u.startsWith(location.origin))""")
    assert external == []
    assert violations == []
