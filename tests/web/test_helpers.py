"""The browser tests' own helpers fail when they should: axe-core on a page with a serious
violation, the mailbox on an address that received nothing, a link that is not there."""

from __future__ import annotations

import datetime as dt
from email.message import EmailMessage

import pytest
from playwright.sync_api import Page

from notifications.events import SAMPLES
from notifications.outbox import enqueue, message
from odd17.db import unit_of_work
from tests.web.conftest import LiveServer
from tests.web.helpers import axe_check, links


def test_axe_check_reports_serious_violations_readably(page: Page) -> None:
    page.set_content('<html lang="fr"><head><title>t</title></head><body><main>'
                     '<img src="data:image/png;base64,iVBORw0KGgo=">'
                     '<input type="text"></main></body></html>')
    with pytest.raises(AssertionError) as failure:
        axe_check(page)
    text = str(failure.value)
    assert "[critical] image-alt" in text
    assert "[critical] label" in text
    assert "<img" in text  # the element, to find it


def test_axe_check_passes_a_clean_page(page: Page) -> None:
    page.set_content('<html lang="fr"><head><title>t</title></head><body><main><h1>Titre</h1>'
                     '<label for="n">Nom</label><input id="n" type="text"></main></body></html>')
    axe_check(page)


def test_mailbox_reads_what_the_outbox_sends(live_server: LiveServer) -> None:
    mailbox = live_server.mailbox
    with pytest.raises(AssertionError, match=r"no email to a@example\.org; sent: none"):
        mailbox.latest("a@example.org")
    now = dt.datetime.now(dt.UTC)
    with unit_of_work(live_server.engine) as session:  # queued, not yet sent: latest() sends
        enqueue(session, [message(SAMPLES[event], "A@Example.org", key=f"k{i}", now=now)
                          for i, event in enumerate(["application_received",
                                                     "application_eligible"])]
                + [message(SAMPLES["application_received"], "b@example.org", key="kb",
                           now=now)])
    assert [m["To"] for m in mailbox.messages("a@example.org")] == ["A@Example.org"] * 2
    latest = mailbox.latest("a@example.org")
    assert latest["Subject"].endswith("Votre dossier est éligible")  # the last one queued
    assert len(mailbox.messages()) == 3


def test_links_are_read_from_the_text_part() -> None:
    mail = EmailMessage()
    mail["Subject"] = "Connexion"
    mail.set_content("Pour vous connecter : http://127.0.0.1:8017/connexion/abc_D-1?x=1.\n"
                     "Aide (https://example.org/aide).")
    mail.add_alternative('<a href="http://ignored.example/">html</a>', subtype="html")
    assert links(mail) == ["http://127.0.0.1:8017/connexion/abc_D-1?x=1",
                           "https://example.org/aide"]
