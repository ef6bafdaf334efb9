"""The portal's sign-in and its security, through HTTP against ``create_app`` (FastAPI's
TestClient), on the test database and the real outbox dispatcher writing .eml files."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from models import OutboxMessage, SignInRequest, WebSession
from odd17.services import accounts
from odd17.services.access import Principal, Role, roles_for
from odd17.settings import reset_caches
from odd17.web.app import create_app, route_table
from odd17.web.policy import ROUTE_POLICY, Who
from odd17.web.security import SESSION_COOKIE
from tests.webutil import (
    APPLICANT,
    MEMBER,
    REVIEWER,
    STAFF,
    Clock,
    client,
    form_token,
    open_session,
    people,
    request_link,
    sent_links,
    sign_in,
    uow_at,
    with_cookie,
)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def mail_dir(db_url: str, tmp_path: Path) -> Path:
    return tmp_path / "outbox"  # ODD17_MAIL_DIR's default, under the test's working folder


@pytest.fixture
def portal(engine: Engine, clock: Clock) -> Iterator[TestClient]:
    people(engine, clock)
    with client(engine, clock) as browser:
        yield browser


KEY = "clé de test des secrets TOTP, 32 caractères au moins"


def configure(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for key, value in values.items():
        monkeypatch.setenv(f"ODD17_{key.upper()}", value)
    reset_caches()


def connexions(engine: Engine, clock: Clock) -> int:
    with uow_at(engine, clock) as uow:
        return uow.session.scalar(select(func.count()).select_from(OutboxMessage)
                                  .where(OutboxMessage.event == "connexion")) or 0


# --- asking for a link ------------------------------------------------------------------------

def test_known_and_unknown_addresses_get_the_same_answer(portal: TestClient, engine: Engine,
                                                        clock: Clock, mail_dir: Path) -> None:
    known = request_link(portal, APPLICANT.upper())  # any case: addresses are compared lower
    unknown = request_link(portal, "personne@inconnu.example.org")
    assert known == unknown and known[0] == 200
    assert "Si cette adresse est connue" in known[1]
    # a call is open: the unknown address is a prospective applicant, sent a link too
    assert connexions(engine, clock) == 2
    [link] = sent_links(engine, mail_dir, APPLICANT)
    assert link.startswith("http://127.0.0.1:8017/connexion/")
    assert len(sent_links(engine, mail_dir, "personne@inconnu.example.org")) == 1


def test_with_no_call_open_only_known_addresses_get_a_link(portal: TestClient, engine: Engine,
                                                           clock: Clock, mail_dir: Path) -> None:
    close_calls(engine, clock)
    known = request_link(portal, APPLICANT)
    unknown = request_link(portal, "personne@inconnu.example.org")
    assert known == unknown and known[0] == 200
    assert connexions(engine, clock) == 1  # only the known address is sent a link
    assert sent_links(engine, mail_dir, "personne@inconnu.example.org") == []


def test_a_prospect_signs_in_sees_the_calls_and_becomes_an_applicant(
        portal: TestClient, engine: Engine, clock: Clock, mail_dir: Path) -> None:
    newcomer = "nouvelle@association.example.org"
    assert sign_in(portal, engine, mail_dir, newcomer).endswith("/mon-espace")
    space = portal.get("/mon-espace")
    assert "futur porteur de projet" in space.text
    calls = portal.get("/appels")
    assert calls.status_code == 200
    created = portal.post("/brouillons", data={"csrf_token": form_token(calls.text)})
    assert created.status_code == 303 and "/brouillons/" in created.headers["location"]
    assert "porteur de projet" in portal.get("/mon-espace").text
    with uow_at(engine, clock) as uow:
        assert roles_for(uow.session, newcomer, clock.now.date()) == {Role.applicant}
    # the calls close: a prospect who started nothing has no role left, so no session
    close_calls(engine, clock)
    with uow_at(engine, clock) as uow:
        assert roles_for(uow.session, "autre@association.example.org",
                         clock.now.date()) == frozenset()


def close_calls(engine: Engine, clock: Clock) -> None:
    from sqlalchemy import update

    from models import Call

    with uow_at(engine, clock) as uow:
        yesterday = clock.now.date() - dt.timedelta(days=1)
        uow.session.execute(update(Call).values(closes_on=yesterday))


def test_the_email_is_french_text_and_html_with_the_link(portal: TestClient, engine: Engine,
                                                         mail_dir: Path) -> None:
    import email
    from email.policy import default

    request_link(portal, REVIEWER)
    [link] = sent_links(engine, mail_dir, REVIEWER)
    [path] = mail_dir.glob("*-connexion.eml")
    message = email.message_from_bytes(path.read_bytes(), policy=default)
    assert "lien de connexion" in message["Subject"]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert f'href="{link}"' in html and "valable 15 minutes" in html


def test_an_invalid_address_is_refused_beside_the_field(portal: TestClient, engine: Engine,
                                                        clock: Clock) -> None:
    status, page = request_link(portal, '"><script>alert(1)</script>')
    assert status == 400 and "adresse e-mail invalide" in page
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert 'aria-describedby="email-erreur"' in page
    assert connexions(engine, clock) == 0


# --- using it -------------------------------------------------------------------------------

def test_sign_in_then_the_link_is_used_up(portal: TestClient, engine: Engine,
                                          mail_dir: Path) -> None:
    request_link(portal, APPLICANT)
    [link] = sent_links(engine, mail_dir, APPLICANT)
    path = "/" + link.split("/", 3)[3]
    assert portal.get(path).status_code == 200
    confirm = portal.get(path)  # opening it again (a mail scanner did first) uses nothing
    assert confirm.status_code == 200 and "Me connecter" in confirm.text
    done = portal.post(path, data={"csrf_token": form_token(confirm.text)})
    assert done.status_code == 303 and done.headers["location"].endswith("/mon-espace")
    cookie = done.headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower() and "Secure" not in cookie
    space = portal.get("/mon-espace")
    assert space.status_code == 200 and "porteur de projet" in space.text
    assert APPLICANT in space.text
    again = portal.post(path, data={"csrf_token": form_token(space.text)})
    assert again.status_code == 410 and "plus valable" in again.text
    with client(engine, portal.app.state.clock) as other:  # nor in another browser
        assert other.get(path).status_code == 410


def test_an_expired_link_is_refused(portal: TestClient, engine: Engine, clock: Clock,
                                    mail_dir: Path) -> None:
    request_link(portal, APPLICANT)
    [link] = sent_links(engine, mail_dir, APPLICANT)
    path = "/" + link.split("/", 3)[3]
    token = form_token(portal.get(path).text)
    clock.advance(minutes=15, seconds=1)
    assert portal.get(path).status_code == 410
    refused = portal.post(path, data={"csrf_token": token})
    assert refused.status_code == 410 and SESSION_COOKIE not in refused.headers.get(
        "set-cookie", "")
    assert portal.get("/mon-espace").status_code == 303


def test_a_forged_link_is_refused(portal: TestClient) -> None:
    assert portal.get("/connexion/" + "A" * 43).status_code == 410
    token = form_token(portal.get("/connexion").text)
    assert portal.post("/connexion/" + "A" * 43, data={"csrf_token": token}).status_code == 410


def test_https_base_url_makes_the_cookie_secure(engine: Engine, clock: Clock, mail_dir: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    configure(monkeypatch, public_url="https://portail.example.org/")
    people(engine, clock)
    with TestClient(create_app(engine=engine, clock=clock), base_url="https://testserver",
                    follow_redirects=False) as browser:
        request_link(browser, APPLICANT)
        [link] = sent_links(engine, mail_dir, APPLICANT)
        assert link.startswith("https://portail.example.org/connexion/")
        path = "/" + link.split("/", 3)[3]
        done = browser.post(path, data={"csrf_token": form_token(browser.get(path).text)})
        assert "Secure" in done.headers["set-cookie"]


# --- CSRF -----------------------------------------------------------------------------------

def test_forms_without_the_right_token_are_refused(portal: TestClient, engine: Engine,
                                                   clock: Clock, mail_dir: Path) -> None:
    portal.get("/connexion")
    for data in ({"email": APPLICANT}, {"email": APPLICANT, "csrf_token": "x" * 64}):
        refused = portal.post("/connexion", data=data)
        assert refused.status_code == 403 and "Formulaire expiré" in refused.text
    with client(engine, clock) as other:  # a token of another browser is not this one's
        stolen = form_token(other.get("/connexion").text)
    assert portal.post("/connexion", data={"email": APPLICANT,
                                           "csrf_token": stolen}).status_code == 403
    assert connexions(engine, clock) == 0
    sign_in(portal, engine, mail_dir, APPLICANT)
    anonymous_token = stolen
    for data in ({}, {"csrf_token": anonymous_token}):
        assert portal.post("/deconnexion", data=data).status_code == 403
    assert portal.get("/mon-espace").status_code == 200  # still signed in
    token = form_token(portal.get("/mon-espace").text)
    assert portal.post("/deconnexion", headers={"X-CSRF-Token": token}).status_code == 200
    assert portal.get("/mon-espace").status_code == 303


# --- sessions -------------------------------------------------------------------------------

def test_a_forged_session_cookie_is_refused(portal: TestClient) -> None:
    for forged in ("A" * 43, "", "x" * 500, "../../etc/passwd"):
        with_cookie(portal, forged)
        answer = portal.get("/mon-espace")
        assert answer.status_code == 303 and answer.headers["location"].endswith("/connexion")


def test_a_cookie_replayed_after_sign_out_is_refused(portal: TestClient, engine: Engine,
                                                     mail_dir: Path) -> None:
    sign_in(portal, engine, mail_dir, APPLICANT)
    cookie = portal.cookies[SESSION_COOKIE]
    token = form_token(portal.get("/mon-espace").text)
    out = portal.post("/deconnexion", data={"csrf_token": token})
    assert out.status_code == 200 and "déconnecté" in out.text
    with_cookie(portal, cookie)
    assert portal.get("/mon-espace").status_code == 303


def test_sign_out_everywhere_revokes_the_other_sessions(portal: TestClient, engine: Engine,
                                                        clock: Clock, mail_dir: Path) -> None:
    sign_in(portal, engine, mail_dir, REVIEWER)
    with client(engine, clock) as phone, client(engine, clock) as stranger:
        sign_in(phone, engine, mail_dir, REVIEWER)
        sign_in(stranger, engine, mail_dir, MEMBER)
        token = form_token(phone.get("/mon-espace").text)
        done = phone.post("/deconnexion/partout", data={"csrf_token": token})
        assert done.status_code == 200 and "2 sessions fermées" in done.text
        assert phone.get("/mon-espace").status_code == 303
        assert portal.get("/mon-espace").status_code == 303
        assert stranger.get("/mon-espace").status_code == 200  # another address: untouched


def test_a_session_expires(engine: Engine, clock: Clock, mail_dir: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    configure(monkeypatch, session_lifetime_hours="2")
    people(engine, clock)
    with client(engine, clock) as browser:
        sign_in(browser, engine, mail_dir, MEMBER)
        clock.advance(hours=1, minutes=59)
        assert browser.get("/mon-espace").status_code == 200
        clock.advance(minutes=1)
        assert browser.get("/mon-espace").status_code == 303


def test_roles_are_listed_in_french(portal: TestClient, engine: Engine, clock: Clock,
                                    mail_dir: Path) -> None:
    with uow_at(engine, clock) as uow:
        accounts.add_user(uow, REVIEWER, "finance")  # staff and reviewer at once
    sign_in(portal, engine, mail_dir, REVIEWER)
    page = portal.get("/mon-espace").text
    assert "évaluateur" in page and "responsable financier" in page
    assert "membre du comité" not in page


# --- rate limits ----------------------------------------------------------------------------

def test_too_many_requests_per_address_then_per_client(engine: Engine, clock: Clock,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    configure(monkeypatch, sign_in_max_per_address="2", sign_in_max_per_client="5",
              sign_in_window_minutes="10")
    people(engine, clock)
    with client(engine, clock) as browser:
        for address in (APPLICANT, "inconnu@example.org"):  # known or not, the same limit
            assert [request_link(browser, address)[0] for _ in range(2)] == [200, 200]
            status, page = request_link(browser, address)
            assert status == 429
            assert "Trop de demandes de lien de connexion pour cette adresse" in page
            assert "réessayez dans 10 minutes" in page
        assert request_link(browser, "autre@example.org")[0] == 200  # the 5th of this client
        status, page = request_link(browser, "encore@example.org")
        assert status == 429 and "pour ce poste" in page
        clock.advance(minutes=10, seconds=1)
        assert request_link(browser, APPLICANT)[0] == 200
    with uow_at(engine, clock) as uow:  # refused requests are not counted
        assert uow.session.scalar(select(func.count()).select_from(SignInRequest)) == 6
    assert connexions(engine, clock) == 6  # a call is open: unknown addresses are prospects


# --- disabled accounts ----------------------------------------------------------------------

def test_a_disabled_account_is_refused_everywhere(portal: TestClient, engine: Engine,
                                                  clock: Clock, mail_dir: Path) -> None:
    address = STAFF["manager"]
    sign_in(portal, engine, mail_dir, address)
    request_link(portal, address)
    [*_, pending_link] = sent_links(engine, mail_dir, address)
    with uow_at(engine, clock) as uow:
        assert accounts.disable_user(uow, address) == 1
    assert portal.get("/mon-espace").status_code == 303  # its session is revoked
    path = "/" + pending_link.split("/", 3)[3]
    refused = portal.post(path, data={"csrf_token": form_token(portal.get("/connexion").text)})
    assert refused.status_code == 410
    before = connexions(engine, clock)
    assert request_link(portal, address)[0] == 200  # the same answer, and no link
    assert connexions(engine, clock) == before


def test_disabling_blocks_an_address_that_is_also_an_applicant(portal: TestClient,
                                                               engine: Engine, clock: Clock,
                                                               mail_dir: Path) -> None:
    with uow_at(engine, clock) as uow:
        accounts.add_user(uow, APPLICANT, "manager")
        accounts.disable_user(uow, APPLICANT)
    request_link(portal, APPLICANT)
    assert sent_links(engine, mail_dir, APPLICANT) == []


# --- TOTP -----------------------------------------------------------------------------------

def test_staff_confirm_with_a_totp_code(engine: Engine, clock: Clock, mail_dir: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    configure(monkeypatch, totp_required_for_staff="true", secret_key=KEY)
    people(engine, clock)
    address = STAFF["admin"]
    with uow_at(engine, clock) as uow:
        secret, uri = accounts.enrol_totp(uow, address, KEY)
    assert uri.startswith("otpauth://totp/") and secret in uri
    with client(engine, clock) as browser, client(engine, clock) as second:
        assert sign_in(browser, engine, mail_dir, address).endswith("/connexion/code")
        gate = browser.get("/mon-espace")  # nothing before the code
        assert gate.status_code == 303 and gate.headers["location"].endswith("/connexion/code")
        page = browser.get("/connexion/code")
        wrong = browser.post("/connexion/code", data={"csrf_token": form_token(page.text),
                                                      "code": "000000"})
        assert wrong.status_code == 400 and "Code incorrect" in wrong.text
        code = pyotp.TOTP(secret).at(clock.now)
        ok = browser.post("/connexion/code", data={"csrf_token": form_token(wrong.text),
                                                   "code": code})
        assert ok.status_code == 303 and ok.headers["location"].endswith("/mon-espace")
        assert "administrateur" in browser.get("/mon-espace").text
        assert browser.get("/connexion/code").status_code == 303  # done: not a pending session
        # the same code a second time (seen over a shoulder) opens nothing
        sign_in(second, engine, mail_dir, address)
        replay = second.post("/connexion/code", data={
            "csrf_token": form_token(second.get("/connexion/code").text), "code": code})
        assert replay.status_code == 400
        assert second.get("/mon-espace").status_code == 303


def test_wrong_totp_codes_end_the_sign_in(engine: Engine, clock: Clock, mail_dir: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    configure(monkeypatch, totp_required_for_staff="true", secret_key=KEY)
    people(engine, clock)
    with uow_at(engine, clock) as uow:
        accounts.enrol_totp(uow, STAFF["finance"], KEY)
    with client(engine, clock) as browser:
        sign_in(browser, engine, mail_dir, STAFF["finance"])
        statuses = []
        for _ in range(5):
            token = form_token(browser.get("/connexion/code").text)
            statuses.append(browser.post("/connexion/code", data={"csrf_token": token,
                                                                  "code": "123456"}).status_code)
        assert statuses == [400, 400, 400, 400, 403]
        assert browser.get("/connexion/code").status_code == 303
        # a staff member who has no code at hand can leave the half-open sign-in
        sign_in(browser, engine, mail_dir, STAFF["finance"])
        token = form_token(browser.get("/connexion/code").text)
        assert browser.post("/deconnexion", data={"csrf_token": token}).status_code == 200
        assert browser.get("/connexion/code").status_code == 303


def test_staff_without_totp_cannot_sign_in_when_it_is_required(
        engine: Engine, clock: Clock, mail_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    configure(monkeypatch, totp_required_for_staff="true")
    people(engine, clock)
    with client(engine, clock) as browser:
        request_link(browser, STAFF["manager"])
        [link] = sent_links(engine, mail_dir, STAFF["manager"])
        path = "/" + link.split("/", 3)[3]
        refused = browser.post(path, data={"csrf_token": form_token(browser.get(path).text)})
        assert refused.status_code == 410 and "odd17 users totp" in refused.text
        assert browser.get(path).status_code == 200  # the link is not used up by the refusal
        # non-staff roles sign in without a code
        assert sign_in(browser, engine, mail_dir, REVIEWER).endswith("/mon-espace")


# --- headers --------------------------------------------------------------------------------

def test_every_page_has_the_security_headers_and_utf8(portal: TestClient, engine: Engine,
                                                      mail_dir: Path) -> None:
    answers = [portal.get("/"), portal.get("/connexion"), portal.get("/nulle-part"),
               portal.post("/connexion", data={}), portal.get("/connexion/" + "x" * 43),
               portal.get("/mon-espace")]
    sign_in(portal, engine, mail_dir, APPLICANT)
    answers += [portal.get("/mon-espace"), portal.put("/mon-espace"),
                portal.get("/static/odd17.css")]
    for answer in answers:
        headers = answer.headers
        assert "default-src 'self'" in headers["content-security-policy"]
        assert "unsafe-inline" not in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] in ("no-referrer", "same-origin")
        assert headers["x-content-type-options"] == "nosniff"
        if headers.get("content-type", "").startswith("text/html") \
                or answer.status_code >= 400:
            assert headers["content-type"] == "text/html; charset=utf-8", answer.request.url
    assert answers[2].status_code == 404 and "Page introuvable" in answers[2].text
    for answer in answers:  # no inline script anywhere
        assert not re.search(r"<script(?![^>]*\bsrc=)", answer.text)


# --- the authorisation matrix ---------------------------------------------------------------

IDENTITIES = ["anonymous", "totp_pending", "applicant", "prospect", "reviewer", "committee",
              "manager", "finance", "admin"]
ADDRESSES = {"applicant": APPLICANT, "reviewer": REVIEWER, "committee": MEMBER, **STAFF,
             "totp_pending": STAFF["admin"], "prospect": "nouveau@association.example.org"}


def test_every_route_has_a_rule(engine: Engine, clock: Clock) -> None:
    app = create_app(engine=engine, clock=clock)
    assert {route.name for route in route_table(app)} == set(ROUTE_POLICY)


def test_authorisation_matrix(engine: Engine, clock: Clock) -> None:
    """Every route (from the route table) × every identity → what its rule says."""
    people(engine, clock)
    with uow_at(engine, clock) as uow:
        accounts.enrol_totp(uow, ADDRESSES["totp_pending"], KEY)
    app = create_app(engine=engine, clock=clock)
    failures = []
    for route in route_table(app):
        rule = ROUTE_POLICY[route.name]
        path = app.url_path_for(route.name, **{p: "x" * 43 for p in route.param_convertors})
        for method in sorted(route.methods or ()):
            for who in IDENTITIES:
                with TestClient(app, follow_redirects=False) as browser:
                    csrf = form_token(browser.get("/connexion").text)
                    if who != "anonymous":
                        cookie, csrf = open_session(engine, clock, ADDRESSES[who],
                                                    pending=who == "totp_pending")
                        with_cookie(browser, cookie)
                    answer = browser.request(method, path, data={"csrf_token": csrf}
                                             if method == "POST" else None)
                got = answer.status_code, answer.headers.get("location", "")
                wanted = expected(rule, who)
                if not wanted(*got):
                    failures.append((route.name, method, who, got))
    assert failures == []


def expected(rule, who: str):  # type: ignore[no-untyped-def]
    """A predicate on (status, location) for an identity under a rule."""
    to_sign_in = lambda s, loc: s == 303 and loc.endswith("/connexion")  # noqa: E731
    to_code = lambda s, loc: s == 303 and loc.endswith("/connexion/code")  # noqa: E731
    # the route's own answer (200, 400 for a bad code, 410 for an unknown link…): the guard
    # neither sent the browser to sign in nor refused it (the CSRF token is right)
    let_in = lambda s, loc: s not in (401, 403) and not (  # noqa: E731
        s == 303 and loc.endswith(("/connexion", "/connexion/code")))
    if rule.who is Who.public:
        return let_in
    if rule.who is Who.totp_pending:
        return let_in if who == "totp_pending" else to_sign_in
    if rule.who is Who.any_session:
        return to_sign_in if who == "anonymous" else let_in
    if who == "anonymous":
        return to_sign_in
    if who == "totp_pending":
        return to_code
    if not rule.permits(Principal(ADDRESSES[who], frozenset({Role(who)}))):
        return lambda s, loc: s == 403
    return let_in


def test_a_session_of_an_address_without_role_is_nobody(engine: Engine, clock: Clock) -> None:
    cookie, _ = open_session(engine, clock, "ancien@example.org")
    close_calls(engine, clock)  # while a call is open, the address would be a prospect
    with client(engine, clock) as browser:
        assert with_cookie(browser, cookie).get("/mon-espace").status_code == 303
    with uow_at(engine, clock) as uow:
        assert uow.session.scalar(select(func.count()).select_from(WebSession)) == 1


def test_require_role_for_the_routes_to_come(engine: Engine, clock: Clock) -> None:
    from fastapi import Depends

    from odd17.web.deps import require_role

    people(engine, clock)
    app = create_app(engine=engine, clock=clock)

    @app.get("/essai-finance")
    def finance_only(user: Principal = Depends(require_role(Role.finance, Role.admin))) -> str:
        return user.email

    answers = {}
    for who in ("anonymous", "applicant", "manager", "finance", "admin", "totp_pending"):
        with TestClient(app, follow_redirects=False) as browser:
            if who != "anonymous":
                with_cookie(browser, open_session(engine, clock, ADDRESSES[who],
                                                  pending=who == "totp_pending")[0])
            answer = browser.get("/essai-finance")
            location = answer.headers.get("location", "")
            answers[who] = answer.status_code, location.replace("http://testserver", "")
    assert answers == {"anonymous": (303, "/connexion"), "applicant": (403, ""),
                       "manager": (403, ""), "finance": (200, ""), "admin": (200, ""),
                       "totp_pending": (303, "/connexion/code")}
