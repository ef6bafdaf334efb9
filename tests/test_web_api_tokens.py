"""« Mes jetons d'API » (odd17/web/api_tokens.py) through HTTP: the owner's tokens only, a
creation whose secret is shown once (not in a URL, not cached, absent from every later page)
and works on the API, a revocation that stops it, another person's token answering 404, CSRF
on each form, French refusals, applicants refused and without the link."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from odd17.services import tokens
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
    uow_at,
    with_cookie,
)

HOSTILE = '<script>alert("x")</script>'
SECRET = re.compile(r"odd17_[A-Za-z0-9_-]{40,}")


@pytest.fixture
def clock(engine: Engine) -> Clock:
    found = Clock()
    people(engine, found)
    return found


def browser(engine: Engine, clock: Clock, address: str) -> TestClient:
    return with_cookie(client(engine, clock), open_session(engine, clock, address)[0])


def csrf(b: TestClient) -> str:
    return form_token(b.get("/mon-espace").text)


def create(b: TestClient, name: str) -> tuple[int, str, str]:
    """(status, page, the secret shown on it or '')."""
    answer = b.post("/mon-espace/jetons", data={"name": name, "csrf_token": csrf(b)})
    found = SECRET.findall(answer.text)
    return answer.status_code, answer.text, found[0] if found else ""


def test_create_shows_the_secret_once_and_it_works(engine: Engine, clock: Clock) -> None:
    b = browser(engine, clock, STAFF["manager"])
    empty = b.get("/mon-espace/jetons")
    assert empty.status_code == 200 and "Aucun jeton pour l'instant" in empty.text

    status, text, secret = create(b, HOSTILE)
    assert status == 200 and secret  # an answer page, not a redirect: no secret in a URL
    assert "il ne sera plus jamais affiché" in text and "chargé de mission" in text
    assert HOSTILE not in text and "&lt;script&gt;" in text
    last = b.post("/mon-espace/jetons", data={"name": "x", "csrf_token": csrf(b)})
    assert last.headers["cache-control"] == "no-store"

    api = b.get("/api/v1/applications", headers={"Authorization": f"Bearer {secret}"})
    assert api.status_code == 200
    listed = b.get("/mon-espace/jetons").text
    assert secret not in listed and secret[:12] + "…" in listed  # its start only
    assert HOSTILE not in listed and "&lt;script&gt;" in listed
    assert listed.count("Révoquer</button>") == 2
    with uow_at(engine, clock) as uow:
        mine = tokens.list_tokens(uow, STAFF["manager"])
    assert [t["name"] for t in mine] == ["x", HOSTILE] and mine[1]["last_used_at"]
    for path in ("/mon-espace", "/mon-espace/jetons"):
        assert secret not in b.get(path).text


def test_revoke_then_the_api_refuses_it(engine: Engine, clock: Clock) -> None:
    b = browser(engine, clock, REVIEWER)
    _, text, secret = create(b, "script")
    assert "évaluateur" in text
    token_id = _ids(engine, clock, REVIEWER)[0]
    path = f"/mon-espace/jetons/{token_id}/revocation"
    assert b.post(path).status_code == 403  # without its CSRF token: refused, still active
    assert _active(engine, clock, REVIEWER) == [True]
    done = b.post(path, data={"csrf_token": csrf(b)})
    assert done.status_code == 303 and done.headers["location"].endswith("?fait=revoque")
    shown = b.get(done.headers["location"]).text
    assert "Jeton révoqué" in shown and "révoqué le" in shown
    again = b.post(path, data={"csrf_token": csrf(b)})
    assert again.status_code == 409 and "déjà révoqué" in again.text
    refused = b.get("/api/v1/applications", headers={"Authorization": f"Bearer {secret}"})
    assert refused.status_code == 401


def _ids(engine: Engine, clock: Clock, owner: str) -> list[int]:
    with uow_at(engine, clock) as uow:
        return [t["id"] for t in tokens.list_tokens(uow, owner)]


def _active(engine: Engine, clock: Clock, owner: str) -> list[bool]:
    with uow_at(engine, clock) as uow:
        return [t["active"] for t in tokens.list_tokens(uow, owner)]


def test_another_persons_token_is_404_and_not_listed(engine: Engine, clock: Clock) -> None:
    finance = browser(engine, clock, STAFF["finance"])
    create(finance, "celui de la finance")
    theirs = _ids(engine, clock, STAFF["finance"])[0]
    b = browser(engine, clock, STAFF["admin"])
    assert "celui de la finance" not in b.get("/mon-espace/jetons").text
    for token_id in (str(theirs), "999999", "abc", "1" * 20):
        answer = b.post(f"/mon-espace/jetons/{token_id}/revocation",
                        data={"csrf_token": csrf(b)})
        assert answer.status_code == 404, token_id
    assert _active(engine, clock, STAFF["finance"]) == [True]


@pytest.mark.parametrize(("name", "message"), [
    ("   ", "le nom du jeton est obligatoire"),
    ("x" * 101, "nom du jeton trop long : 101 caractères"),
])
def test_a_bad_name_is_refused_in_french(engine: Engine, clock: Clock, name: str,
                                         message: str) -> None:
    b = browser(engine, clock, MEMBER)
    status, text, secret = create(b, name)
    assert status == 400 and message in text and not secret
    assert 'aria-invalid="true"' in text
    assert _ids(engine, clock, MEMBER) == []


def test_without_csrf_nothing_is_created(engine: Engine, clock: Clock) -> None:
    b = browser(engine, clock, STAFF["finance"])
    assert b.post("/mon-espace/jetons", data={"name": "x"}).status_code == 403
    assert _ids(engine, clock, STAFF["finance"]) == []


def test_applicants_are_refused_and_have_no_link(engine: Engine, clock: Clock) -> None:
    b = browser(engine, clock, APPLICANT)
    assert "Mes jetons d'API" not in b.get("/mon-espace").text
    assert b.get("/mon-espace/jetons").status_code == 403
    assert create(b, "x")[0] == 403
    assert _ids(engine, clock, APPLICANT) == []
    for address in (STAFF["manager"], STAFF["finance"], STAFF["admin"], REVIEWER, MEMBER):
        assert "Mes jetons d'API" in browser(engine, clock, address).get("/mon-espace").text
