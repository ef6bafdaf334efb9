"""Helpers of the browser tests: accessibility (axe-core), screenshots for the README, the
emails of the live server and the links they carry, the width of a page on a phone, and the
steps several journeys share (signing in by the emailed link, filling an application)."""

from __future__ import annotations

import email
import os
import re
from email.message import EmailMessage
from email.policy import default
from email.utils import getaddresses
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from playwright.sync_api import Page, expect
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

    def sent_since(self, seen: int) -> list[tuple[str, str]]:
        """(recipient, subject) of the messages sent after the first ``seen`` ones, sorted:
        a step's emails, each as many times as it was sent."""
        return sorted((str(m["To"]).casefold(), str(m["Subject"]))
                      for m in self.messages()[seen:])


class Server(Protocol):
    """What the journeys need of ``conftest.LiveServer`` (imported from there, not here)."""

    mailbox: Mailbox

    def url(self, path: str = "/") -> str: ...


def local(url: str) -> str:
    """The path of a link of an email (on ODD17_PUBLIC_URL), for the live server."""
    return "/" + url.split("/", 3)[3]


def sign_in(page: Page, server: Server, address: str, shots: str = "") -> None:
    """Ask for a sign-in link, read it from the ``.eml`` folder, follow it, confirm."""
    page.goto(server.url("/connexion"))
    page.get_by_label("Adresse e-mail").fill(address)
    if shots:
        axe_check(page)
        screenshot(page, f"{shots}-connexion")
    page.get_by_role("button", name="Recevoir un lien de connexion").click()
    expect(page.locator("h1")).to_contain_text("Consultez votre messagerie")
    page.goto(server.url(local(server.mailbox.link(address, "/connexion/"))))
    page.get_by_role("button", name="Me connecter").click()
    expect(page.locator("h1")).to_have_text("Mon espace")


def pdf(text: str) -> bytes:
    return b"%PDF-1.7\n" + text.encode() + b"\n%%EOF\n"


def fill_organisation(page: Page, prefix: str, name: str, kind: str, siret: str) -> None:
    page.locator(f"#f-{prefix}-name").fill(name)
    page.locator(f"#f-{prefix}-kind").select_option(kind)
    page.locator(f"#f-{prefix}-siret").fill(siret)


def fill_application(page: Page, lead: str, requested: str) -> None:
    """The draft form of « Nouveau dossier » filled with an eligible project (the partners and
    the cofunding added by htmx, which swaps their group only), asking ``requested`` euros
    (as typed); not saved."""
    page.locator("#f-title").fill("Alliance pour l'emploi des jeunes du Mantois")
    page.locator("#f-summary").fill("Une association, une entreprise et une collectivité "
                                    "co-construisent un parcours.")
    page.get_by_label("Expérimentation").check()
    page.get_by_label("Dialogue").check()
    page.get_by_label("Co-construction").check()
    fill_organisation(page, "lead", "Association Passerelles Mantoises", "association",
                      "52601815590833")
    page.locator("#f-lead-email").fill(lead)
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
    page.locator("#f-requested_amount").fill(requested)
    page.locator("#f-total_budget").fill("310 000")
    page.locator("#f-start_date").fill("2027-03-01")
    page.locator("#f-duration_months").fill("24")


def attach_documents(page: Page) -> None:
    """The three required documents attached to the draft open on ``page``."""
    for kind, name in (("statuts", "statuts.pdf"), ("budget_previsionnel", "budget.pdf"),
                       ("rib", "rib.pdf")):
        page.get_by_label("Type de pièce").select_option(kind)
        page.get_by_label("Fichier").set_input_files(
            {"name": name, "mimeType": "application/pdf", "buffer": pdf(kind)})
        page.get_by_role("button", name="Joindre la pièce").click()
        expect(page.locator("[role=status]")).to_contain_text("Pièce jointe")
        expect(page.locator("table")).to_contain_text(name)
