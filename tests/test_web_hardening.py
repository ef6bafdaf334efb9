"""Hardening of the portal (closing note of issue 14): no usable sign-in secret left in the
outbox, uploads cut off at the limit while they are read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from models import DomainError, MessageStatus, OutboxMessage
from odd17.services import outbox
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
    # requeued, it would send no working link: refused by id, skipped when requeueing all
    with uow_at(engine, clock) as uow:
        failed_id = uow.session.scalars(select(OutboxMessage.id).where(
            OutboxMessage.event == "connexion")).one()
        with pytest.raises(DomainError, match=f"message {failed_id} : son lien de connexion"):
            outbox.retry(uow, [failed_id])
        outbox.retry(uow, None)  # every failed message but this one
    assert [s for s, _ in stored(engine, clock)] == [MessageStatus.failed]


# --- 3. an upload without Content-Length ------------------------------------------------------

CHUNK = 16 * 1024


def test_a_chunked_upload_is_cut_off_at_the_limit_while_it_is_read(
        engine: Engine, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A body sent in chunks, without Content-Length, far larger than a file may be: the portal
    stops reading it past the limit (the generator is not drained), answers 413 in French, and
    nothing is stored. httpx's ASGI transport hands the body to the app chunk by chunk."""
    import asyncio

    import httpx

    from models import Attachment
    from odd17.web.app import create_app
    from odd17.web.security import SESSION_COOKIE
    from tests.webutil import open_session

    uploads = tmp_path / "uploads"
    monkeypatch.setenv("ODD17_UPLOAD_DIR", str(uploads))
    monkeypatch.setenv("ODD17_UPLOAD_MAX_BYTES", "4096")
    reset_caches()
    lead = "direction@nouvelle-alliance.example.org"
    cookie, _ = open_session(engine, clock, lead)
    with client(engine, clock) as browser:
        browser.cookies.set(SESSION_COOKIE, cookie)
        token = form_token(browser.get("/mon-espace").text)
        draft = browser.post("/brouillons", data={"csrf_token": token}) \
            .headers["location"].rsplit("/", 1)[1]
    sent = [0]
    total = 4 * 1024 * 1024

    async def body() -> Any:
        boundary = "odd17limite"
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n"
               f"{token}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\n"
               f"statuts\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"fichier\"; "
               f"filename=\"enorme.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.4\n"
               ).encode()
        while sent[0] < total:
            sent[0] += CHUNK
            yield b"x" * CHUNK
        yield f"\r\n--{boundary}--\r\n".encode()

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(engine=engine, clock=clock))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8017",
                                     cookies={SESSION_COOKIE: cookie}) as http:
            return await http.post(
                f"/brouillons/{draft}/pieces", content=body(),
                headers={"Content-Type": "multipart/form-data; boundary=odd17limite"})

    answer = asyncio.run(post())
    assert answer.status_code == 413, answer.text
    assert "Fichier trop volumineux" in answer.text and "taille autorisée" in answer.text
    assert sent[0] <= 4096 + 64 * 1024 + CHUNK  # read up to the limit, not to the end
    assert not any(p.is_file() for p in uploads.rglob("*")) if uploads.exists() else True
    with uow_at(engine, clock) as uow:
        assert uow.session.scalars(select(Attachment)).all() == []
    reset_caches()


# --- 4. htmx and error answers ----------------------------------------------------------------

def test_every_4xx_answer_to_htmx_replaces_the_main_content(
        engine: Engine, clock: Clock) -> None:
    """Whatever the route and the refusal (a form's error, a guessed id, an expired form), an
    htmx request answered 4xx is told to swap the page's <main>, never the fragment it asked
    for (which the error page does not have); other answers are left alone."""
    from tests.webutil import open_session, with_cookie

    people(engine, clock)
    htmx = {"HX-Request": "true"}
    with with_cookie(client(engine, clock), open_session(engine, clock, APPLICANT)[0]) as user:
        token = form_token(user.get("/mon-espace").text)
        draft = user.post("/brouillons", data={"csrf_token": token}).headers["location"]
        answers = {
            "invalid": user.post(draft, data={"csrf_token": token, "title": "a\x01b",
                                              "action": "add:partners"}, headers=htmx),
            "guessed": user.post("/brouillons/999999", data={"csrf_token": token},
                                 headers=htmx),
            "expired": user.post(draft, data={"csrf_token": "faux"}, headers=htmx),
        }
        for name, answer in answers.items():
            assert 400 <= answer.status_code < 500, name
            assert answer.headers["HX-Retarget"] == "#contenu", name
            assert answer.headers["HX-Reselect"] == "#contenu", name
            assert 'id="contenu"' in answer.text, name
        assert "caractère de contrôle interdit" in answers["invalid"].text
        fine = user.post(draft, data={"csrf_token": token, "action": "add:partners"},
                         headers=htmx)
        assert fine.status_code == 200 and "HX-Retarget" not in fine.headers
        plain = user.post("/brouillons/999999", data={"csrf_token": token})
        assert plain.status_code == 404 and "HX-Retarget" not in plain.headers


# --- 1b. TOTP secrets sealed at rest ------------------------------------------------------------

KEY = "clé de test des secrets TOTP, 32 caractères au moins"


def totp_stored(engine: Engine, clock: Clock, address: str) -> str | None:
    from models import User

    with uow_at(engine, clock) as uow:
        return uow.session.scalars(select(User.totp_secret).where(User.email == address)).one()


def set_totp_stored(engine: Engine, clock: Clock, address: str, value: str) -> None:
    from models import User

    with uow_at(engine, clock) as uow:
        uow.session.scalars(select(User).where(User.email == address)).one().totp_secret = value


def enter_code(browser: TestClient, engine: Engine, mail_dir: Path, address: str,
               code: str) -> Any:
    from tests.webutil import sign_in

    assert sign_in(browser, engine, mail_dir, address).endswith("/connexion/code")
    token = form_token(browser.get("/connexion/code").text)
    return browser.post("/connexion/code", data={"csrf_token": token, "code": code})


@pytest.fixture
def totp_portal(engine: Engine, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ODD17_TOTP_REQUIRED_FOR_STAFF", "true")
    monkeypatch.setenv("ODD17_SECRET_KEY", KEY)
    reset_caches()
    people(engine, clock)
    clock.advance(minutes=-2)  # in the past: moving it on leaves the dispatcher's messages due


def test_totp_secrets_are_sealed_and_bound_to_their_account(
        totp_portal: None, engine: Engine, clock: Clock, mail_dir: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import pyotp

    from odd17.services import accounts
    from tests.webutil import STAFF

    admin, finance = STAFF["admin"], STAFF["finance"]
    with uow_at(engine, clock) as uow:
        secret, _ = accounts.enrol_totp(uow, admin, KEY)
        other, _ = accounts.enrol_totp(uow, finance, KEY)
    stored = totp_stored(engine, clock, admin)
    assert stored is not None and secret not in stored and secret.lower() not in stored.lower()
    assert len(stored) <= 64  # the column as it is
    # the sealed value copied to another account opens nothing there
    set_totp_stored(engine, clock, finance, stored)
    with client(engine, clock) as browser:
        copied = enter_code(browser, engine, mail_dir, finance, pyotp.TOTP(secret).at(clock.now))
        assert copied.status_code == 400 and "ne se lit pas avec la clé" in copied.text
    with client(engine, clock) as browser:  # its own account, the right key: signed in
        done = enter_code(browser, engine, mail_dir, admin, pyotp.TOTP(secret).at(clock.now))
        assert done.status_code == 303 and done.headers["location"].endswith("/mon-espace")
    monkeypatch.setenv("ODD17_SECRET_KEY", "une autre clé, de 32 caractères au moins !")
    reset_caches()
    clock.advance(minutes=1)
    with client(engine, clock) as browser:  # another key: a French message, no session
        wrong = enter_code(browser, engine, mail_dir, admin, pyotp.TOTP(secret).at(clock.now))
        assert wrong.status_code == 400 and "odd17 users totp" in wrong.text
        assert browser.get("/mon-espace").status_code == 303
    assert other  # finance's own secret was replaced by the copy: unused


def test_a_secret_stored_in_clear_before_still_works_and_is_sealed_on_use(
        totp_portal: None, engine: Engine, clock: Clock, mail_dir: Path) -> None:
    import pyotp

    from tests.webutil import STAFF

    secret = pyotp.random_base32()
    set_totp_stored(engine, clock, STAFF["admin"], secret)  # a row from before sealing
    with client(engine, clock) as browser:
        done = enter_code(browser, engine, mail_dir, STAFF["admin"],
                          pyotp.TOTP(secret).at(clock.now))
        assert done.status_code == 303
    stored = totp_stored(engine, clock, STAFF["admin"])
    assert stored is not None and secret not in stored
    clock.advance(minutes=1)
    with client(engine, clock) as browser:  # sealed now, and still the same secret
        assert enter_code(browser, engine, mail_dir, STAFF["admin"],
                          pyotp.TOTP(secret).at(clock.now)).status_code == 303
