"""The administrator's workspace (odd17/web/admin.py): through HTTP, the staff accounts listed,
one added (French errors beside the fields), disabled (its sessions closed) and enabled again,
a TOTP secret reset and shown once, an admin refused on their own account, a guessed id 404,
the CSRF token required, reviewers listed read-only and escaped; then the journey in a real
browser with axe-core on each page."""

from __future__ import annotations

import re

import httpx
import pyotp
import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect
from sqlalchemy import Engine, select

from models import Reviewer, User
from odd17.services import sealing
from odd17.settings import reset_caches
from tests.web.conftest import LiveServer
from tests.web.helpers import axe_check, horizontal_overflow, screenshot
from tests.web.test_applicant_journey import sign_in
from tests.webutil import (
    STAFF,
    Clock,
    add_people,
    client,
    form_token,
    open_session,
    uow_at,
    with_cookie,
)

ADMIN, MANAGER = STAFF["admin"], STAFF["manager"]
HOSTILE = '<script>alert("x")</script> & Cie'


KEY = "clé de test des secrets TOTP, 32 caractères au moins"


@pytest.fixture(autouse=True)
def secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The key that seals TOTP secrets (ODD17_SECRET_KEY): without it a reset is refused."""
    monkeypatch.setenv("ODD17_SECRET_KEY", KEY)
    reset_caches()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def setup(engine: Engine, clock: Clock) -> None:
    with uow_at(engine, clock) as uow:
        add_people(uow)
        uow.session.add(Reviewer(email="hostile@eval.example.org", name=HOSTILE, siren=None,
                                 interests=[], reviews=True, committee=True, active=True,
                                 created_at=uow.now))


def browser(engine: Engine, clock: Clock, address: str = ADMIN) -> TestClient:
    return with_cookie(client(engine, clock), open_session(engine, clock, address)[0])


def account_id(engine: Engine, address: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(User.id).where(User.email == address)).scalar_one())


def find(engine: Engine, address: str) -> User | None:
    with uow_at(engine, Clock()) as uow:
        user = uow.session.scalars(select(User).where(User.email == address)).first()
        if user is not None:
            uow.session.expunge(user)
        return user


def account(engine: Engine, address: str) -> User:
    user = find(engine, address)
    assert user is not None, address
    return user


def post(b: TestClient, path: str, **fields: str) -> httpx.Response:
    token = form_token(b.get("/admin/comptes").text)
    return b.post(path, data={"csrf_token": token, **fields})


def test_the_list_of_accounts_and_the_reviewers_read_only(engine: Engine, clock: Clock) -> None:
    setup(engine, clock)
    with browser(engine, clock) as b:
        answer = b.get("/admin/comptes")
        space = b.get("/mon-espace").text
    assert answer.status_code == 200
    text = answer.text
    for address, role in ((ADMIN, "administrateur"), (MANAGER, "chargé de mission"),
                          (STAFF["finance"], "responsable financier")):
        assert re.search(rf"<th scope=\"row\">{re.escape(address)}.*?</th>\s*<td>{role}</td>",
                         text), address
    assert f"{ADMIN} (vous)" in text
    assert "odd17 reviewers add" in text and "hostile@eval.example.org" in text
    assert HOSTILE not in text and "&lt;script&gt;" in text  # escaped
    assert 'href="http://testserver/admin/comptes"' in space  # the link on « Mon espace »
    with browser(engine, clock, MANAGER) as b:
        assert "/admin/comptes" not in b.get("/mon-espace").text
        assert b.get("/admin/comptes").status_code == 403


def test_adding_an_account_with_errors_beside_the_fields(engine: Engine, clock: Clock) -> None:
    setup(engine, clock)
    with browser(engine, clock) as b:
        bad = post(b, "/admin/comptes", email="pas une adresse", role="")
        assert bad.status_code == 400
        page = bad.text
        assert re.search(r'id="f-email-erreur">adresse e-mail invalide : « pas une adresse »',
                         page)
        assert 'id="f-role-erreur">choisissez un rôle' in page
        assert 'value="pas une adresse"' in page and 'aria-invalid="true"' in page
        wrong_role = post(b, "/admin/comptes", email="nouveau@fonds.example.org", role="chef")
        assert wrong_role.status_code == 400
        assert "rôle inconnu « chef »" in wrong_role.text
        assert find(engine, "nouveau@fonds.example.org") is None
        done = post(b, "/admin/comptes", email=" Nouveau@Fonds.example.org ", role="finance")
        assert done.status_code == 303
        shown = b.get(done.headers["location"]).text
    assert "Compte créé." in shown and "nouveau@fonds.example.org" in shown
    user = account(engine, "nouveau@fonds.example.org")
    assert user.role.value == "finance" and not user.disabled


def test_disable_closes_the_sessions_then_enable(engine: Engine, clock: Clock) -> None:
    setup(engine, clock)
    manager = browser(engine, clock, MANAGER)
    assert manager.get("/gestion").status_code == 200
    target = account_id(engine, MANAGER)
    with browser(engine, clock) as b:
        done = post(b, f"/admin/comptes/{target}/desactivation")
        assert done.status_code == 303
        assert "ses sessions sont fermées" in b.get(
            done.headers["location"]).text
        assert manager.get("/gestion").status_code == 303  # signed out at once
        assert account(engine, MANAGER).disabled
        again = post(b, f"/admin/comptes/{target}/reactivation")
        assert again.status_code == 303
        assert "Compte réactivé." in b.get(
            again.headers["location"]).text
    assert not account(engine, MANAGER).disabled


def test_an_admin_cannot_disable_nor_demote_themselves(engine: Engine, clock: Clock) -> None:
    setup(engine, clock)
    me = account_id(engine, ADMIN)
    with browser(engine, clock) as b:
        listed = b.get("/admin/comptes").text
        assert f"/admin/comptes/{me}/desactivation" not in listed  # no button for oneself
        refused = post(b, f"/admin/comptes/{me}/desactivation")
        assert refused.status_code == 409
        assert ("Action refusée : vous ne pouvez pas désactiver votre propre compte"
                in refused.text)
        demoted = post(b, "/admin/comptes", email=ADMIN, role="manager")
        assert demoted.status_code == 409
        assert "retirer le rôle d&#39;administrateur" in demoted.text
    user = account(engine, ADMIN)
    assert user.role.value == "admin" and not user.disabled


def test_totp_reset_shown_once_not_cached(engine: Engine, clock: Clock) -> None:
    setup(engine, clock)
    target = account_id(engine, MANAGER)
    with browser(engine, clock) as b:
        answer = post(b, f"/admin/comptes/{target}/totp")
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    sealed = account(engine, MANAGER).totp_secret
    assert sealed and sealing.is_sealed(sealed)  # stored sealed, never in clear
    stored = sealing.unseal(sealed, MANAGER, KEY)
    assert f">{stored}</code>" in answer.text
    uri = re.search(r'>(otpauth://[^<]+)</code>', answer.text)
    assert uri and pyotp.parse_uri(uri.group(1).replace("&amp;", "&")).secret == stored
    with browser(engine, clock) as b:
        assert stored not in b.get("/admin/comptes").text  # shown once, never listed


def test_unknown_ids_and_missing_tokens(engine: Engine, clock: Clock) -> None:
    setup(engine, clock)
    target = account_id(engine, MANAGER)
    with browser(engine, clock) as b:
        for path in ("999999/desactivation", "abc/reactivation", f"{'9' * 13}/totp",
                     "-1/desactivation"):
            assert post(b, f"/admin/comptes/{path}").status_code == 404, path
        forged = b.post(f"/admin/comptes/{target}/desactivation", data={"csrf_token": "x"})
        assert forged.status_code == 403
        unsigned = b.post("/admin/comptes", data={"email": "z@fonds.example.org",
                                                  "role": "admin"})
        assert unsigned.status_code == 403
    assert not account(engine, MANAGER).disabled
    assert find(engine, "z@fonds.example.org") is None


def test_the_admin_journey(live_server: LiveServer, page: Page) -> None:
    with uow_at(live_server.engine, Clock()) as uow:
        add_people(uow)
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text)
            if "Content Security Policy" in m.text else None)
    page.set_viewport_size({"width": 1000, "height": 800})
    sign_in(page, live_server, ADMIN)
    page.get_by_role("link", name="Comptes de l'équipe").click()
    expect(page.locator("h1")).to_have_text("Comptes de l'équipe")
    axe_check(page)

    page.get_by_label("Adresse e-mail").fill("nouvelle@fonds")
    page.get_by_label("Rôle").select_option("finance")
    page.get_by_role("button", name="Ajouter le compte").click()
    expect(page.locator("#f-email-erreur")).to_contain_text("adresse e-mail invalide")
    expect(page.get_by_label("Adresse e-mail")).to_have_attribute("aria-invalid", "true")
    axe_check(page)
    page.get_by_label("Adresse e-mail").fill("nouvelle@fonds.example.org")
    page.get_by_role("button", name="Ajouter le compte").click()
    expect(page.get_by_role("status")).to_have_text("Compte créé.")
    screenshot(page, "30-admin-comptes")

    page.get_by_role("button", name="Désactiver nouvelle@fonds.example.org").click()
    expect(page.get_by_role("status")).to_contain_text("Compte désactivé")
    row = page.get_by_role("row", name=re.compile("nouvelle@fonds.example.org"))
    expect(row).to_contain_text("désactivé")
    page.get_by_role("button", name="Réactiver nouvelle@fonds.example.org").click()
    expect(page.get_by_role("status")).to_have_text("Compte réactivé.")
    axe_check(page)

    page.get_by_role("button", name="Nouveau code TOTP pour nouvelle@fonds.example.org").click()
    expect(page.locator("h1")).to_have_text("Nouveau code TOTP de nouvelle@fonds.example.org")
    expect(page.locator("code.secret").first).to_contain_text("otpauth://totp/")
    axe_check(page)
    page.set_viewport_size({"width": 360, "height": 740})
    assert horizontal_overflow(page) == 0  # a long otpauth link, on a phone
    page.get_by_role("link", name="Retour aux comptes").click()
    assert horizontal_overflow(page) == 0
    assert not blocked, blocked
