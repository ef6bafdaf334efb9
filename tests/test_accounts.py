"""Accounts and sign-in use cases (odd17/services/access.py, accounts.py, signin.py) and the
``odd17 users`` commands, on the test database."""

from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy import Engine, func, select, update

from models import DomainError, OutboxMessage, Reviewer, SignInToken, WebSession
from odd17.services import accounts, signin
from odd17.services.access import Role, roles_for
from odd17.settings import get_settings
from odd17.web.app import account_policy
from tests.test_cli import cli
from tests.webutil import APPLICANT, MEMBER, REVIEWER, STAFF, Clock, people, uow_at


@pytest.fixture
def clock() -> Clock:
    return Clock()


def policy() -> signin.AccountPolicy:
    return account_policy(get_settings())


def test_roles_come_from_each_table(engine: Engine, clock: Clock) -> None:
    people(engine, clock)
    with uow_at(engine, clock) as uow:
        assert roles_for(uow.session, APPLICANT) == {Role.applicant}
        assert roles_for(uow.session, REVIEWER) == {Role.reviewer}
        assert roles_for(uow.session, MEMBER) == {Role.committee}
        assert roles_for(uow.session, STAFF["finance"]) == {Role.finance}
        assert roles_for(uow.session, "personne@example.org") == frozenset()
        uow.session.execute(update(Reviewer).where(Reviewer.email == REVIEWER)
                            .values(active=False))
        assert roles_for(uow.session, REVIEWER) == frozenset()  # inactive: no role
        accounts.disable_user(uow, STAFF["finance"])
        assert roles_for(uow.session, STAFF["finance"]) == frozenset()


def test_tokens_and_cookies_are_stored_hashed(engine: Engine, clock: Clock) -> None:
    people(engine, clock)
    with uow_at(engine, clock) as uow:
        signin.request_sign_in(uow, policy(), APPLICANT, "10.0.0.1")
    with uow_at(engine, clock) as uow:
        [message] = uow.session.scalars(select(OutboxMessage)
                                        .where(OutboxMessage.event == "connexion")).all()
        token = message.context["link"].rsplit("/", 1)[1]
        stored = uow.session.scalars(select(SignInToken)).one()
        assert stored.token_hash == signin.digest(token) and token not in stored.token_hash
        assert len(token) >= 43 and stored.expires_at - stored.created_at == signin.LINK_LIFETIME
    with uow_at(engine, clock) as uow:
        new = signin.consume_link(uow, policy(), token)
    with uow_at(engine, clock) as uow:
        row = uow.session.scalars(select(WebSession)).one()
        assert row.id == signin.digest(new.cookie) and new.cookie != row.id


def test_a_link_opens_one_session_when_used_twice_at_once(engine: Engine, clock: Clock) -> None:
    """Compare-and-set on ``used_at``: two browsers presenting the link together (PostgreSQL's
    READ COMMITTED re-checks the condition after the first commits)."""
    people(engine, clock)
    with uow_at(engine, clock) as uow:
        signin.request_sign_in(uow, policy(), MEMBER, "10.0.0.1")
        context = uow.session.scalars(select(OutboxMessage.context)
                                      .where(OutboxMessage.event == "connexion")).one()
    token = context["link"].rsplit("/", 1)[1]
    barrier, outcomes = threading.Barrier(4), []

    def use() -> None:
        barrier.wait()
        try:
            with uow_at(engine, clock) as uow:
                signin.consume_link(uow, policy(), token)
            outcomes.append("ok")
        except signin.InvalidLink:
            outcomes.append("refused")

    threads = [threading.Thread(target=use) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes) == ["ok", "refused", "refused", "refused"]
    with uow_at(engine, clock) as uow:
        assert uow.session.scalar(select(func.count()).select_from(WebSession)) == 1


def test_a_bad_address_is_one_french_message(engine: Engine, clock: Clock) -> None:
    with uow_at(engine, clock) as uow, pytest.raises(DomainError) as caught:
        signin.request_sign_in(uow, policy(), "jean\u202e@example.org\x1b[2J", "10.0.0.1")
    assert str(caught.value).startswith("adresse e-mail invalide")
    assert "<U+202E>" in str(caught.value) and "\x1b" not in str(caught.value)


# --- odd17 users -----------------------------------------------------------------------------

def test_users_add_list_disable(engine: Engine, clock: Clock) -> None:
    code, out, _ = cli("users", "add", "  Chargee@Fonds.Example.org ", "--role", "manager")
    assert code == 0 and "chargee@fonds.example.org créé : chargé de mission" in out
    assert cli("users", "add", "finance@fonds.example.org", "--role", "finance")[0] == 0
    code, out, _ = cli("users", "list", "--json")
    rows = json.loads(out)
    assert [(r["email"], r["role"], r["disabled"], r["totp"]) for r in rows] == [
        ("chargee@fonds.example.org", "manager", False, False),
        ("finance@fonds.example.org", "finance", False, False)]
    assert set(rows[0]) == {"email", "role", "disabled", "totp", "created_at"}
    code, out, _ = cli("users", "list")
    assert code == 0 and "chargé de mission" in out and "actif" in out
    people(engine, clock)
    cookies = []
    for _ in range(2):
        with uow_at(engine, clock) as uow:
            signin.request_sign_in(uow, policy(), "finance@fonds.example.org", "10.0.0.2")
        with uow_at(engine, clock) as uow:
            link = uow.session.scalars(select(OutboxMessage.context).order_by(
                OutboxMessage.id.desc()).where(OutboxMessage.event == "connexion")).first()
            cookies.append(signin.consume_link(uow, policy(), link["link"].rsplit("/", 1)[1])
                           .cookie)
    code, out, _ = cli("users", "disable", "FINANCE@fonds.example.org")
    assert code == 0 and "désactivé ; 2 session(s) fermée(s)" in out
    with uow_at(engine, clock) as uow:
        assert [signin.session_for(uow, c) for c in cookies] == [None, None]
    assert "désactivé" in cli("users", "list")[1]
    code, out, _ = cli("users", "add", "finance@fonds.example.org", "--role", "admin")
    assert code == 0 and "mis à jour" in out  # enabled again, with its new role
    assert json.loads(cli("users", "list", "--json")[1])[2]["disabled"] is False


@pytest.mark.parametrize("args, words", [
    (["users", "add", "x@example.org", "--role", "chef"], "--role : « chef » inconnu"),
    (["users", "add", "pas-une-adresse", "--role", "admin"], "adresse e-mail invalide"),
    (["users", "disable", "inconnu@example.org"], "aucun compte pour inconnu@example.org"),
    (["users", "totp", "inconnu@example.org"], "aucun compte"),
    (["users", "add", "[bold red]x[/]@example.org", "--role", "admin"],
     "« [bold red]x[/]@example.org »"),
    (["users", "add", "a\x1b]0;pwned\x07@example.org", "--role", "admin"],
     "a<U+001B>]0;pwned<U+0007>@example.org"),
    (["users", "add", "x@example.org", "--role", "<b>\u202eadmin"], "<b><U+202E>admin"),
])
def test_users_bad_input_is_refused_and_shown_literally(db_url: str, args: list[str],
                                                        words: str) -> None:
    code, out, err = cli(*args)
    assert code == 2 and "Traceback" not in out + err
    assert err.startswith("Erreur : ") and words in err, err
    assert "\x1b" not in err and "\x07" not in err and "\u202e" not in err
    assert json.loads(cli("users", "list", "--json")[1]) == []  # nothing written


def test_users_totp_prints_the_secret_once(engine: Engine, clock: Clock,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import pyotp

    from odd17.settings import reset_caches

    cli("users", "add", "admin@fonds.example.org", "--role", "admin")
    code, out, err = cli("users", "totp", "admin@fonds.example.org")
    assert code == 2 and "ODD17_SECRET_KEY n'est pas défini" in err  # it seals the secret
    monkeypatch.setenv("ODD17_SECRET_KEY", "clé de test des secrets TOTP, 32 caractères")
    reset_caches()
    code, out, err = cli("users", "totp", "admin@fonds.example.org")
    assert code == 0 and "il ne sera plus affiché" in err
    uri = next(line for line in out.splitlines() if line.startswith("URI : "))[6:]
    secret = next(line for line in out.splitlines() if line.startswith("Secret : "))[9:]
    assert pyotp.parse_uri(uri).secret == secret
    assert json.loads(cli("users", "list", "--json")[1])[0]["totp"] is True
    assert secret not in cli("users", "list")[1] + cli("users", "list", "--json")[1]


def test_role_lookups_have_their_indexes(engine: Engine) -> None:
    """roles_for runs at every page view: lower(address) is indexed (a scan took ~100 ms for
    50,000 applications on SQLite; ~1 ms with the index)."""
    from sqlalchemy import text

    query = ("SELECT name FROM sqlite_master WHERE type = 'index'"
             if engine.dialect.name == "sqlite" else "SELECT indexname FROM pg_indexes")
    with engine.connect() as conn:
        names = set(conn.execute(text(query)).scalars())
    assert {"ix_applications_contact_email_lower", "ix_organisations_email_lower"} <= names
    plan = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    if engine.dialect.name == "sqlite":  # PostgreSQL prefers a scan on a table this small
        with engine.connect() as conn:
            rows = conn.execute(text(plan + "SELECT id FROM applications "
                                     "WHERE lower(contact_email) = 'x'")).all()
        assert "ix_applications_contact_email_lower" in str(rows)


def test_a_draft_lead_and_its_co_applicants_are_applicants(engine: Engine) -> None:
    """Before any application exists: the lead of a draft and whom they invited sign in."""
    import datetime as dt

    from odd17.services import drafts
    from tests.applicant_helpers import LEAD, MEMBER, PUBLIC, STRANGER, uow

    with uow(engine, dt.datetime.now(dt.UTC)) as u:
        assert roles_for(u.session, MEMBER) == frozenset()
        draft = drafts.create_draft(u, LEAD, document={"title": "Alliance"})
        drafts.invite(u, draft, LEAD, MEMBER, public_url=PUBLIC)
    with uow(engine, dt.datetime.now(dt.UTC)) as u:
        assert roles_for(u.session, LEAD) == {Role.applicant}
        assert roles_for(u.session, MEMBER) == {Role.applicant}
        assert roles_for(u.session, STRANGER) == frozenset()


def test_a_prospect_is_an_address_without_role_while_a_call_is_open(engine: Engine,
                                                                     clock: Clock) -> None:
    """No role given, a disabled account and a role already held stay as they are."""
    import datetime as dt

    from models import Call

    people(engine, clock)
    today = clock.now.date()
    with uow_at(engine, clock) as uow:
        accounts.disable_user(uow, STAFF["finance"])
    with uow_at(engine, clock) as uow:
        assert roles_for(uow.session, "nouveau@example.org", today) == {Role.prospect}
        assert roles_for(uow.session, "nouveau@example.org") == frozenset()  # no day given
        assert roles_for(uow.session, APPLICANT, today) == {Role.applicant}
        assert roles_for(uow.session, REVIEWER, today) == {Role.reviewer}
        assert roles_for(uow.session, STAFF["finance"], today) == frozenset()  # disabled
        uow.session.execute(update(Call).values(closes_on=today - dt.timedelta(days=1)))
        assert roles_for(uow.session, "nouveau@example.org", today) == frozenset()
