"""Hardening of the portal (closing note of issue 14): no usable sign-in secret left in the
outbox, uploads cut off at the limit while they are read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from models import MessageStatus, OutboxMessage
from odd17.settings import reset_caches
from tests.smtp import SmtpServer, free_port
from tests.webutil import (
    APPLICANT,
    Clock,
    client,
    form_token,
    people,
    request_link,
    sent_links,
    uow_at,
)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def mail_dir(db_url: str, tmp_path: Path) -> Path:
    return tmp_path / "outbox"


@pytest.fixture
def portal(engine: Engine, clock: Clock) -> Iterator[TestClient]:
    people(engine, clock)
    with client(engine, clock) as browser:
        yield browser


def stored(engine: Engine, clock: Clock) -> list[tuple[MessageStatus, str]]:
    """Each connexion row as a reader of the database sees it: status, every column's text."""
    with uow_at(engine, clock) as uow:
        rows = uow.session.scalars(select(OutboxMessage)
                                   .where(OutboxMessage.event == "connexion")).all()
        return [(m.status, json.dumps(m.context) + repr(vars(m))) for m in rows]


# --- 1. the sign-in link in the outbox --------------------------------------------------------

def test_a_sent_link_is_blanked_in_the_outbox_and_still_signs_in(
        portal: TestClient, engine: Engine, clock: Clock, mail_dir: Path) -> None:
    request_link(portal, APPLICANT)
    [(status, before)] = stored(engine, clock)
    link = sent_links(engine, mail_dir, APPLICANT)[-1]
    token = link.rsplit("/", 1)[1]
    assert status == MessageStatus.pending and token in before  # written with the request
    [(status, after)] = stored(engine, clock)
    assert status == MessageStatus.sent and token not in after
    assert "retiré après l'envoi" in after
    path = "/connexion/" + token  # the email's copy is the one that works
    confirm = portal.get(path)
    done = portal.post(path, data={"csrf_token": form_token(confirm.text)})
    assert done.status_code == 303 and done.headers["location"].endswith("/mon-espace")


def test_a_failed_link_is_blanked_too(portal: TestClient, engine: Engine, clock: Clock,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    smtp = SmtpServer(free_port())
    smtp.inbox.refuse[APPLICANT] = "550 5.1.1 Mailbox unknown"
    smtp.start()
    try:
        for key, value in {"MAIL_TRANSPORT": "smtp", "SMTP_HOST": "127.0.0.1",
                           "SMTP_PORT": str(smtp.port)}.items():
            monkeypatch.setenv(f"ODD17_{key}", value)
        reset_caches()
        request_link(portal, APPLICANT)
        [(_, before)] = stored(engine, clock)
        token = before.split("/connexion/", 1)[1][:43]
        assert sent_links(engine, Path("."), APPLICANT) == []
    finally:
        smtp.stop()
        reset_caches()
    [(status, after)] = stored(engine, clock)
    assert status == MessageStatus.failed and token not in after
