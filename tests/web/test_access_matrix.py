"""The authorisation matrix: every route of the portal × every role (anonymous included) → the
answer expected, requested for real on the live server. The routes are read from the app's
route table, so a route added without its line in ``RULES`` fails ``test_every_route_has_a_rule``
(and a line left for a route that is gone fails it too)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from tests.web.conftest import LiveServer
from tests.webutil import APPLICANT, MEMBER, REVIEWER, STAFF

# applicant: the owner of the objects the routes name (draft 1, its file 1, the application);
# other_applicant: an applicant with a draft of their own, who must get 404 on the owner's
ROLES = ("anonymous", "applicant", "other_applicant", "reviewer", "committee", "manager",
         "finance", "admin")
OTHER_APPLICANT = "autre@porteur.example.org"
CO_APPLICANT = "co@porteur.example.org"


def everyone(status: int) -> dict[str, int]:
    return dict.fromkeys(ROLES, status)


@dataclass(frozen=True)
class Rule:
    """What each role gets (the status, redirects not followed); ``path`` is the URL requested
    when the route has parameters, ``form`` the body of a POST."""
    answers: dict[str, int]
    path: str | None = None
    form: dict[str, str] = field(default_factory=dict)
    # sign in again first: an earlier route of the matrix (a sign-out) may have ended the session
    fresh_session: bool = False


def signed_in(status: int, anonymous: int = 303) -> dict[str, int]:
    """``status`` for every signed-in role; anonymous users are sent to sign in (303)."""
    return {**everyone(status), "anonymous": anonymous}


UNKNOWN_LINK = "/connexion/" + "x" * 43


def applicant_space(owner: int, other: int = 404) -> dict[str, int]:
    """A page of the applicant's space on the owner's object: staff and reviewers are refused
    the space (403), another applicant gets the 404 of a missing object."""
    return {**everyone(403), "anonymous": 303, "applicant": owner, "other_applicant": other}


def manager_space(manager: int) -> dict[str, int]:
    """A page of the fund manager's workspace: the manager only (admin included in nothing)."""
    return {**everyone(403), "anonymous": 303, "manager": manager}


def only(role: str, status: int) -> dict[str, int]:
    """A workspace of one role: ``status`` for it, 403 for the other roles."""
    return {**everyone(403), "anonymous": 303, role: status}


def finance_space(status: int) -> dict[str, int]:
    """A page of the finance workspace: ``status`` for the finance officer, 403 for every
    other signed-in role."""
    return {**everyone(403), "anonymous": 303, "finance": status}


def token_holders(status: int) -> dict[str, int]:
    """« Mes jetons d'API »: staff, reviewers and committee members; applicants refused."""
    return {**everyone(status), "anonymous": 303, "applicant": 403, "other_applicant": 403}


# (method, route path) -> Rule. Every role must have its answer.
RULES: dict[tuple[str, str], Rule] = {
    ("GET", "/"): Rule(everyone(200)),
    # sign-in (odd17/web/auth.py, rules in odd17/web/policy.py)
    ("GET", "/connexion"): Rule(everyone(200)),
    ("POST", "/connexion"): Rule(everyone(200), form={"email": "matrice@example.org"}),
    ("GET", "/connexion/{token}"): Rule(everyone(410), path=UNKNOWN_LINK),
    ("POST", "/connexion/{token}"): Rule(everyone(410), path=UNKNOWN_LINK),
    ("GET", "/connexion/code"): Rule(everyone(303)),   # no session waits for a code
    ("POST", "/connexion/code"): Rule(everyone(303), form={"code": "000000"}),
    ("GET", "/mon-espace"): Rule(signed_in(200)),
    ("POST", "/deconnexion"): Rule(signed_in(200), fresh_session=True),
    ("POST", "/deconnexion/partout"): Rule(signed_in(200), fresh_session=True),
    # the applicant's space (odd17/web/applicant.py); {ref} is the owner's application
    ("GET", "/appels"): Rule(applicant_space(200, 200)),
    ("POST", "/brouillons"): Rule(applicant_space(303, 303)),
    ("GET", "/brouillons/{draft_id}"): Rule(applicant_space(200), path="/brouillons/1"),
    ("POST", "/brouillons/{draft_id}"): Rule(applicant_space(200), path="/brouillons/1",
                                             form={"title": "Titre revu", "action": "save"}),
    ("POST", "/brouillons/{draft_id}/co-porteurs"): Rule(
        applicant_space(303), path="/brouillons/1/co-porteurs",
        form={"email": "invite@porteur.example.org"}),
    ("POST", "/brouillons/{draft_id}/co-porteurs/retrait"): Rule(
        applicant_space(303), path="/brouillons/1/co-porteurs/retrait",
        form={"email": CO_APPLICANT}),
    ("POST", "/brouillons/{draft_id}/pieces"): Rule(  # no file: the page says to choose one
        applicant_space(400), path="/brouillons/1/pieces", form={"kind": "statuts"}),
    ("POST", "/brouillons/{draft_id}/pieces/{attachment_id}/retrait"): Rule(
        applicant_space(303), path="/brouillons/1/pieces/1/retrait"),
    ("GET", "/pieces/{attachment_id}"): Rule(applicant_space(200), path="/pieces/1"),
    ("GET", "/dossiers/{reference}"): Rule(applicant_space(200), path="/dossiers/{ref}"),
    ("POST", "/dossiers/{reference}/retrait"): Rule(  # no reason: refused, nothing changes
        applicant_space(400), path="/dossiers/{ref}/retrait", form={"reason": ""},
        fresh_session=True),  # it comes after the sign-outs
    # the fund manager's workspace (odd17/web/manager.py); {ref} is eligible, one reviewer only
    ("GET", "/gestion"): Rule(manager_space(200)),
    ("GET", "/gestion/dossiers/{reference}"): Rule(manager_space(200),
                                                   path="/gestion/dossiers/{ref}"),
    ("GET", "/gestion/dossiers/{reference}/pieces/{attachment_id}"): Rule(  # file 1: a draft's
        manager_space(404), path="/gestion/dossiers/{ref}/pieces/1"),
    ("GET", "/gestion/dossiers/{reference}/reevaluation"): Rule(
        manager_space(200), path="/gestion/dossiers/{ref}/reevaluation"),
    ("POST", "/gestion/dossiers/{reference}/attribution"): Rule(  # too few reviewers: refused
        manager_space(400), path="/gestion/dossiers/{ref}/attribution"),
    ("POST", "/gestion/dossiers/{reference}/commentaires"): Rule(
        manager_space(303), path="/gestion/dossiers/{ref}/commentaires",
        form={"body": "Note de la matrice"}),
    ("POST", "/gestion/dossiers/{reference}/evaluateurs"): Rule(  # nobody chosen: refused
        manager_space(400), path="/gestion/dossiers/{ref}/evaluateurs"),
    ("POST", "/gestion/dossiers/{reference}/reevaluation"): Rule(
        manager_space(303), path="/gestion/dossiers/{ref}/reevaluation"),
    # the runs of the Prefect deployments: 200 whether a Prefect server answers or not
    ("GET", "/gestion/executions"): Rule(manager_space(200)),
    # the reviewer's and the committee's workspaces (odd17/web/reviewing.py): the matrix's
    # reviewer is designated for no application (404 on the owner's)
    ("GET", "/evaluation"): Rule(only("reviewer", 200)),
    ("GET", "/evaluation/{reference}"): Rule(only("reviewer", 404), path="/evaluation/{ref}"),
    ("POST", "/evaluation/{reference}"): Rule(only("reviewer", 404), path="/evaluation/{ref}",
                                              form={"action": "save"}),
    ("GET", "/comite"): Rule(only("committee", 200)),
    ("POST", "/comite/decisions"): Rule(  # no decision chosen: refused, nothing changes
        only("committee", 400), form={"reference": "FDS-2099-99999", "outcome": ""}),
    ("GET", "/comite/proces-verbal"): Rule(only("committee", 200),
                                           path="/comite/proces-verbal?date=2026-12-03"),
    ("GET", "/comite/proces-verbal.pdf"): Rule(only("committee", 200),
                                               path="/comite/proces-verbal.pdf?date=2026-12-03"),
    # the finance workspace (odd17/web/finance.py): the finance officer only; the payment
    # form without its fields and the statement without a file are refused (400), nothing paid
    ("GET", "/finances"): Rule(finance_space(200)),
    ("GET", "/finances/tranches"): Rule(finance_space(200)),
    ("POST", "/finances/tranches/{reference}/{number}"): Rule(
        finance_space(400), path="/finances/tranches/{ref}/1"),
    ("GET", "/finances/releve"): Rule(finance_space(200)),
    ("POST", "/finances/releve"): Rule(finance_space(400)),
    ("GET", "/finances/exports/scdl.csv"): Rule(finance_space(200)),
    ("GET", "/finances/exports/360giving.json"): Rule(finance_space(409)),  # no grant yet
    # the administrator's workspace (odd17/web/admin.py): the admin only; the add form without
    # its fields is refused (400), an unknown account answers 404, nothing changes
    ("GET", "/admin/comptes"): Rule(only("admin", 200)),
    ("POST", "/admin/comptes"): Rule(only("admin", 400), form={"email": "", "role": ""}),
    ("POST", "/admin/comptes/{user_id}/desactivation"): Rule(
        only("admin", 404), path="/admin/comptes/999999/desactivation"),
    ("POST", "/admin/comptes/{user_id}/reactivation"): Rule(
        only("admin", 404), path="/admin/comptes/999999/reactivation"),
    ("POST", "/admin/comptes/{user_id}/totp"): Rule(only("admin", 404),
                                                    path="/admin/comptes/999999/totp"),
    ("GET", "/finances/grand-livre"): Rule(finance_space(200)),
    ("GET", "/finances/grand-livre.csv"): Rule(finance_space(200)),
    # the JSON API (odd17/web/api.py): a bearer token, never the browser's session (401);
    # its scopes are tested in tests/test_api.py
    ("GET", "/api/v1/openapi.json"): Rule(everyone(200)),
    ("GET", "/api/v1/applications"): Rule(everyone(401)),
    ("GET", "/api/v1/applications/{reference}"): Rule(everyone(401),
                                                      path="/api/v1/applications/{ref}"),
    ("GET", "/api/v1/finance"): Rule(everyone(401)),
    ("GET", "/api/v1/tranches"): Rule(everyone(401)),
    # the API's actions (odd17/web/api_actions.py): a session cookie with its CSRF token
    # authorises no write (401); the scopes are tested in tests/test_api_actions.py
    ("POST", "/api/v1/applications/{reference}/evaluation"): Rule(
        everyone(401), path="/api/v1/applications/{ref}/evaluation"),
    ("POST", "/api/v1/applications/{reference}/assignment"): Rule(
        everyone(401), path="/api/v1/applications/{ref}/assignment"),
    ("POST", "/api/v1/applications/{reference}/reviewers"): Rule(
        everyone(401), path="/api/v1/applications/{ref}/reviewers"),
    ("POST", "/api/v1/applications/{reference}/comments"): Rule(
        everyone(401), path="/api/v1/applications/{ref}/comments", form={"body": "x"}),
    ("POST", "/api/v1/payments"): Rule(everyone(401)),
    ("POST", "/api/v1/payments/statement"): Rule(everyone(401)),
    # « Mes jetons d'API » (odd17/web/api_tokens.py): the roles that can hold a token; token
    # 999999 is nobody's (404)
    ("GET", "/mon-espace/jetons"): Rule(token_holders(200)),
    ("POST", "/mon-espace/jetons"): Rule(token_holders(200), form={"name": "matrice"}),
    ("POST", "/mon-espace/jetons/{token_id}/revocation"): Rule(
        token_holders(404), path="/mon-espace/jetons/999999/revocation"),
}

# How a client becomes each role on the live server; None: the portal has no sign-in for that
# role, so its column is skipped (with this reason) until one is written here.
SignIn = Callable[[LiveServer, httpx.Client], None]
def _csrf(client: httpx.Client) -> str:
    """The anti-CSRF token of this browser's forms (the page's ``csrf-token`` meta)."""
    found = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/").text)
    assert found
    return found.group(1)


def _people(server: LiveServer) -> None:
    """An application (its lead is the applicant), a reviewer and the staff, once."""
    from sqlalchemy import func, select

    from models import User
    from tests.webutil import Clock, people

    with server.engine.connect() as conn:
        if conn.execute(select(func.count()).select_from(User)).scalar():
            return
    people(server.engine, Clock())
    _drafts(server)


def _drafts(server: LiveServer) -> None:
    """Draft 1 (with file 1 and a co-applicant) led by the applicant; draft 2 by the other."""
    import io

    from odd17.services import attachments, drafts
    from odd17.settings import get_settings
    from odd17.uow import Context, open_uow

    with open_uow(server.engine, Context.from_settings("test")) as uow:
        mine = drafts.create_draft(uow, APPLICANT, document={"title": "Brouillon du porteur"})
        drafts.invite(uow, mine, APPLICANT, CO_APPLICANT, public_url=get_settings().public_url)
        attachments.add_attachment(uow, attachments.UploadStore.from_settings(), mine,
                                   APPLICANT, "statuts", "statuts.pdf",
                                   io.BytesIO(b"%PDF-1.7\nstatuts\n%%EOF\n"))
        drafts.create_draft(uow, OTHER_APPLICANT, document={"title": "Un autre brouillon"})


def _reference(server: LiveServer) -> str:
    from sqlalchemy import select

    from models import Application

    with server.engine.connect() as conn:
        return str(conn.execute(select(Application.reference).order_by(Application.id)
                                .limit(1)).scalar_one())


def _signed_in_as(address: str) -> SignIn:
    """The real sign-in: ask for a link, read it from the mailbox, confirm it."""
    def sign_in(server: LiveServer, client: httpx.Client) -> None:
        _people(server)
        asked = client.post("/connexion", data={"email": address, "csrf_token": _csrf(client)})
        assert asked.status_code == 200, asked.text
        path = urlsplit(server.mailbox.link(address, "/connexion/")).path
        assert client.get(path).status_code == 200
        done = client.post(path, data={"csrf_token": _csrf(client)})
        assert done.status_code == 303 and done.headers["location"].endswith("/mon-espace")
    return sign_in


SIGN_IN: dict[str, SignIn | None] = {
    "anonymous": lambda server, client: None,
    "applicant": _signed_in_as(APPLICANT),
    "other_applicant": _signed_in_as(OTHER_APPLICANT),
    "reviewer": _signed_in_as(REVIEWER),
    "committee": _signed_in_as(MEMBER),
    "manager": _signed_in_as(STAFF["manager"]),
    "finance": _signed_in_as(STAFF["finance"]),
    "admin": _signed_in_as(STAFF["admin"]),
}


def _walk(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str]]:
    for route in routes:
        if isinstance(route, Mount):
            if isinstance(route.app, StaticFiles):
                continue  # files, the same for everyone
            yield from _walk(route.routes, prefix + route.path)
        elif isinstance(route, Route):
            for method in sorted((route.methods or set()) - {"HEAD"}):
                yield method, prefix + route.path
        elif hasattr(route, "original_router"):  # include_router: FastAPI keeps it as one entry
            yield from _walk(route.original_router.routes, prefix)
        elif isinstance(route, WebSocketRoute):
            yield "WEBSOCKET", prefix + route.path
        else:
            yield type(route).__name__, prefix + getattr(route, "path", "?")


def route_table(app: FastAPI) -> set[tuple[str, str]]:
    return set(_walk(app.routes))


def rule_problems(app: FastAPI) -> list[str]:
    table = route_table(app)
    problems = [f"{m} {p}: no rule in RULES" for m, p in sorted(table - RULES.keys())]
    problems += [f"{m} {p}: a rule for a route that does not exist"
                 for m, p in sorted(RULES.keys() - table)]
    for (method, path), rule in sorted(RULES.items()):
        if set(rule.answers) != set(ROLES):
            problems.append(f"{method} {path}: answers for {sorted(rule.answers)}, "
                            f"not for every role of {ROLES}")
        if "{" in path and not rule.path:
            problems.append(f"{method} {path}: a path parameter but no URL to request")
    return problems


def test_every_route_has_a_rule() -> None:
    from odd17.web.app import create_app

    problems = rule_problems(create_app())
    assert not problems, "\n".join(problems)


def test_a_new_route_without_a_rule_is_reported() -> None:
    from odd17.web.app import create_app

    app = create_app()
    app.add_api_route("/nouvelle/{ref}", lambda ref: ref, methods=["GET", "POST"])
    assert rule_problems(app) == ["GET /nouvelle/{ref}: no rule in RULES",
                                  "POST /nouvelle/{ref}: no rule in RULES"]


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_the_expected_answer_on_every_route(role: str,
                                                          request: pytest.FixtureRequest) -> None:
    sign_in = SIGN_IN[role]
    if sign_in is None:
        pytest.skip(f"the portal has no sign-in for the role {role} yet: its column of the "
                    "matrix runs once SIGN_IN has one")
    from odd17.web.app import create_app

    live_server: LiveServer = request.getfixturevalue("live_server")  # after the skip: cheaper

    wrong = []
    # 30 s: /gestion/executions imports Prefect on its first visit (seconds on a busy machine)
    with httpx.Client(base_url=live_server.base, follow_redirects=False,
                      timeout=30) as client:
        _people(live_server)  # the objects the routes name, whoever asks
        reference = _reference(live_server)
        sign_in(live_server, client)
        for method, path in sorted(route_table(create_app())):
            rule = RULES[method, path]
            url = (rule.path or path).replace("{ref}", reference)
            if rule.fresh_session:
                client.cookies.clear()
                sign_in(live_server, client)
            form = {**rule.form, "csrf_token": _csrf(client)} if method == "POST" else None
            response = client.request(method, url, data=form)
            if response.status_code != rule.answers[role]:
                wrong.append(f"{method} {url}: expected {rule.answers[role]}, "
                             f"got {response.status_code}")
    assert not wrong, f"as {role}:\n" + "\n".join(wrong)
