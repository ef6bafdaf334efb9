"""Helpers of the browser tests: accessibility (axe-core), screenshots for the README, the
emails of the live server and the links they carry, the width of a page on a phone."""

from __future__ import annotations

import email
import os
import re
from email.message import EmailMessage
from email.policy import default
from email.utils import getaddresses
from functools import cache
from pathlib import Path
from typing import Any

from playwright.sync_api import Page
from sqlalchemy import Engine

ROOT = Path(__file__).resolve().parents[2]
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
SCREENSHOTS = ROOT / "docs" / "screenshots"
BLOCKING = ("serious", "critical")


@cache
def _axe_source() -> str:
    return AXE.read_text(encoding="utf-8")


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it is now. Evaluated, not added as a <script>: the
    page's Content-Security-Policy (no inline script) does not apply to what the test runs."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(_axe_source())
    result = page.evaluate("async () => await window.axe.run(document, "
                           "{resultTypes: ['violations']})")
    return list(result["violations"])


def format_violations(violations: list[dict[str, Any]]) -> str:
    lines = []
    for violation in violations:
        lines.append(f"[{violation['impact']}] {violation['id']}: {violation['help']} "
                     f"({violation['helpUrl']})")
        for node in violation["nodes"]:
            target = " ".join(str(part) for part in node["target"])
            summary = (node.get("failureSummary") or "").replace("\n", " / ")
            lines.append(f"    {target}: {summary}")
            lines.append(f"        {node['html'][:200]}")
    return "\n".join(lines)


def axe_check(page: Page) -> None:
    """No serious or critical axe-core violation on the page (the minor and moderate ones are
    listed on stdout, shown by pytest when the test fails)."""
    violations = axe_violations(page)
    blocking = [v for v in violations if v["impact"] in BLOCKING]
    minor = [v for v in violations if v["impact"] not in BLOCKING]
    if minor:
        print(f"axe, minor violations on {page.url}:\n{format_violations(minor)}")
    assert not blocking, (f"axe: {len(blocking)} serious or critical violation(s) on {page.url}:\n"
                          + format_violations(blocking))


def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path | None:
    """docs/screenshots/<name>.png for the README's guide, only when ODD17_SCREENSHOTS=1 (so
    that a test run does not rewrite files of the repository); ``full_page=False``: what the
    viewport shows (a long form's full height makes a large file)."""
    if os.environ.get("ODD17_SCREENSHOTS") != "1":
        return None
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
        raise ValueError(f"screenshot name {name!r}: lower-case letters, digits, - and _")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def horizontal_overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than its viewport (0: no horizontal scroll)."""
    return int(page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"))


def text_part(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None, f"no text/plain part in « {message['Subject']} »"
    return str(part.get_content())


def links(message: EmailMessage) -> list[str]:
    """The http(s) links of the message's text part, in order."""
    return [url.rstrip(".,;:)»") for url in re.findall(r"https?://[^\s<>\"']+",
                                                       text_part(message))]


class Mailbox:
    """The ``.eml`` folder of the live server. Reading it first sends what the outbox holds, as
    the outbox flow does every few seconds in production."""

    def __init__(self, folder: Path, engine: Engine) -> None:
        self.folder = folder
        self.engine = engine

    def deliver(self) -> None:
        from odd17.services.outbox import MailSettings, send
        from odd17.settings import get_settings
        from odd17.uow import Context, Runner

        report = send(Runner(self.engine, Context.from_settings("test:outbox")),
                      MailSettings.from_settings(get_settings()))
        assert not report.errors and report.unreachable is None, report

    def messages(self, address: str | None = None) -> list[EmailMessage]:
        """The messages sent so far (to ``address`` if given), oldest first: the files are
        named after the outbox's message numbers."""
        self.deliver()
        found = []
        for path in sorted(self.folder.glob("*.eml")):
            message = email.message_from_bytes(path.read_bytes(), policy=default)
            assert isinstance(message, EmailMessage)
            recipients = {addr.casefold() for _, addr in getaddresses(message.get_all("To", []))}
            if address is None or address.casefold() in recipients:
                found.append(message)
        return found

    def latest(self, address: str) -> EmailMessage:
        found = self.messages(address)
        if not found:
            sent = [f"{m['To']}: {m['Subject']}" for m in self.messages()]
            raise AssertionError(f"no email to {address}; sent: {sent or 'none'}")
        return found[-1]

    def link(self, address: str, containing: str = "") -> str:
        """The first link containing ``containing`` in the latest email to ``address``."""
        message = self.latest(address)
        found = [url for url in links(message) if containing in url]
        assert found, f"no link with {containing!r} in « {message['Subject']} »: {links(message)}"
        return found[0]
