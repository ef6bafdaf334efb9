"""Helpers of the web portal's tests: a clock the tests move, a client on ``create_app``,
the sign-in link read from the ``.eml`` files the real dispatcher writes, and people with
each role."""

from __future__ import annotations

import datetime as dt
import email
import re
import secrets
from contextlib import AbstractContextManager
from email.policy import default
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from models import Reviewer, WebSession
from odd17.services import accounts, outbox
from odd17.services.outbox import MailSettings
from odd17.services.signin import digest
from odd17.settings import get_settings
from odd17.uow import Context, Runner, UnitOfWork, open_uow
from odd17.web.app import create_app
from odd17.web.security import SESSION_COOKIE
from tests.factories import VALID, eligible

APPLICANT = VALID["lead"]["email"]  # the lead's address of the applications of factories
REVIEWER = "relecture@evaluation.example.org"
MEMBER = "membre@comite.example.org"
STAFF = {"manager": "charge@fonds.example.org", "finance": "finance@fonds.example.org",
         "admin": "admin@fonds.example.org"}
TOKEN_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


class Clock:
    """The units of work's clock: ``advance`` moves it."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


def uow_at(engine: Engine, clock: Clock) -> AbstractContextManager[UnitOfWork]:
    return open_uow(engine, Context.from_settings("test", clock=clock))


def client(engine: Engine, clock: Clock) -> TestClient:
    return TestClient(create_app(engine=engine, clock=clock), follow_redirects=False)


def form_token(page: str) -> str:
    found = TOKEN_FIELD.search(page)
    assert found, page
    return found.group(1)


def people(engine: Engine, clock: Clock) -> None:
    """One address per role: an application's lead, a reviewer, a committee member, staff."""
    eligible(engine, 1)
    with uow_at(engine, clock) as uow:
        add_people(uow)


def add_people(uow: UnitOfWork) -> None:
    for address, reviews, committee in ((REVIEWER, True, False), (MEMBER, False, True)):
        uow.session.add(Reviewer(email=address, name="Personne", siren=None, interests=[],
                                 reviews=reviews, committee=committee, active=True,
                                 created_at=uow.now))
    for role, address in STAFF.items():
        accounts.add_user(uow, address, role)


def request_link(browser: TestClient, address: str) -> tuple[int, str]:
    token = form_token(browser.get("/connexion").text)
    answer = browser.post("/connexion", data={"email": address, "csrf_token": token})
    return answer.status_code, answer.text


def sent_links(engine: Engine, mail_dir: Path, address: str) -> list[str]:
    """Send the outbox with the real dispatcher (.eml folder) and read the links to ``address``
    from the plain-text parts, oldest first."""
    outbox.send(Runner(engine, Context.from_settings("test:outbox")),
                MailSettings.from_settings(get_settings()))
    links = []
    for path in sorted(mail_dir.glob("*.eml"), key=lambda p: p.name):  # zero-padded numbers
        message = email.message_from_bytes(path.read_bytes(), policy=default)
        if message["To"] != address:
            continue
        text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        links += re.findall(r"https?://\S+/connexion/[A-Za-z0-9_-]+", text)
    return links


def sign_in(browser: TestClient, engine: Engine, mail_dir: Path, address: str) -> str:
    """The whole journey; returns the path the confirmation redirects to."""
    assert request_link(browser, address)[0] == 200
    link = sent_links(engine, mail_dir, address)[-1]
    path = "/" + link.split("/", 3)[3]
    confirm = browser.get(path)
    assert confirm.status_code == 200, confirm.text
    done = browser.post(path, data={"csrf_token": form_token(confirm.text)})
    assert done.status_code == 303, done.text
    return done.headers["location"]


def open_session(engine: Engine, clock: Clock, address: str, *,
                 pending: bool = False) -> tuple[str, str]:
    """A session row made directly (for the matrix test): (cookie, its CSRF token)."""
    cookie, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    with uow_at(engine, clock) as uow:
        uow.session.add(WebSession(
            id=digest(cookie), email=address, csrf_token=csrf, created_at=uow.now,
            last_seen_at=uow.now, expires_at=uow.now + dt.timedelta(hours=1), revoked_at=None,
            totp_confirmed=not pending, totp_failures=0))
    return cookie, csrf


def with_cookie(browser: TestClient, cookie: str) -> TestClient:
    browser.cookies.set(SESSION_COOKIE, cookie)
    return browser
