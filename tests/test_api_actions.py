"""The JSON API's actions (odd17/web/api_actions.py) over HTTP: each one's role (401 without a
token or with a revoked one, 403 for another role and nothing written, a session cookie alone
refused), what each writes (the same use cases as the web and the CLI: same shapes as
``--json``), 404 for an unknown reference, 409 for a refusal in the present state, 422 in
French for a body that cannot be read, and the payment reference's idempotency."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from models import (
    Application,
    Comment,
    EligibilityEvaluation,
    LedgerEntry,
    Review,
    Reviewer,
    Status,
)
from odd17.db import unit_of_work
from odd17.services import ledger, tokens
from odd17.web.app import create_app
from rules.tranches import DEFAULT_PLAN
from tests.factories import as_uow, eligible, in_committee
from tests.test_cli import cli
from tests.webutil import (
    MEMBER,
    REVIEWER,
    STAFF,
    Clock,
    add_people,
    open_session,
    uow_at,
    with_cookie,
)

NOW = dt.datetime.combine(dt.date.today() - dt.timedelta(days=20), dt.time(10), dt.UTC)
DAY = NOW.date().isoformat()
OWNERS = {**STAFF, "reviewer": REVIEWER, "committee": MEMBER}
FREE = ("libre1@evaluation.example.org", "libre2@evaluation.example.org")
UNKNOWN = "ODD17-2099-99999"
# each action: (path with {ref}, JSON body or NDJSON text, the only scope allowed)
ACTIONS: list[tuple[str, Any, str]] = [
    ("/api/v1/applications/{ref}/evaluation", None, "manager"),
    ("/api/v1/applications/{ref}/assignment", None, "manager"),
    ("/api/v1/applications/{ref}/reviewers", {"reviewers": list(FREE)}, "manager"),
    ("/api/v1/applications/{ref}/comments", {"body": "Note interne"}, "manager"),
    ("/api/v1/payments", {"reference": "{ref}", "tranche": 1, "payment_reference": "VIR-A",
                          "date": DAY}, "finance"),
    ("/api/v1/payments/statement", "{ref}", "finance"),
]


class Fund:
    def __init__(self, eligible: list[str], approved: list[str], secrets: dict[str, str],
                 revoked: str) -> None:
        self.eligible, self.approved, self.secrets, self.revoked = \
            eligible, approved, secrets, revoked


@pytest.fixture
def fund(engine: Engine) -> Fund:
    """Two eligible applications and two approved ones (first tranches due), the staff and
    reviewers (two free ones), a token per role and a revoked manager's token."""
    ready = eligible(engine, 2, start=10)
    approved = in_committee(engine, 2)
    with unit_of_work(engine) as s:
        for ref in approved:
            ledger.approve(as_uow(s, now=NOW, actor="c"), ref, Decimal("100000"),
                           plan=DEFAULT_PLAN)
    secrets: dict[str, str] = {}
    with uow_at(engine, Clock()) as uow:
        add_people(uow)
        for address in FREE:
            uow.session.add(Reviewer(email=address, name="Libre", siren=None, interests=[],
                                     reviews=True, committee=False, active=True,
                                     created_at=uow.now))
        uow.session.flush()
        for role, owner in OWNERS.items():
            secrets[role] = tokens.create(uow, owner, f"jeton {role}")["secret"]
        revoked = tokens.create(uow, STAFF["manager"], "révoqué")
        tokens.revoke(uow, revoked["token"]["id"])
    return Fund(ready, approved, secrets, revoked["secret"])


@pytest.fixture
def api(engine: Engine) -> TestClient:
    return TestClient(create_app(engine=engine, clock=Clock()), follow_redirects=False)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def send(api: TestClient, path: str, body: Any, ref: str,
         headers: dict[str, str] | None = None) -> Any:
    url = path.replace("{ref}", ref)
    if isinstance(body, str):  # a statement: one JSON line
        line = json.dumps({"reference": ref, "tranche": 1, "payment_reference": "VIR-S",
                           "date": DAY})
        return api.post(url, content=line + "\n", headers={
            **(headers or {}), "Content-Type": "application/x-ndjson"})
    if isinstance(body, dict):
        body = json.loads(json.dumps(body).replace("{ref}", ref))
    return api.post(url, json=body, headers=headers or {})


def snapshot(engine: Engine) -> tuple[Any, ...]:
    """What any action would change: statuses, then the rows of comments, ledger entries,
    evaluations and reviews."""
    with engine.connect() as conn:
        statuses = sorted(conn.execute(select(Application.reference, Application.status)))
        return (statuses, *(conn.execute(select(func.count()).select_from(table)).scalar()
                            for table in (Comment, LedgerEntry, EligibilityEvaluation, Review)))


def target(fund: Fund, scope: str) -> str:
    return fund.eligible[0] if scope == "manager" else fund.approved[0]


@pytest.mark.parametrize(("path", "body", "scope"), ACTIONS)
def test_each_action_401_403_then_only_its_role(api: TestClient, fund: Fund, engine: Engine,
                                                path: str, body: Any, scope: str) -> None:
    ref = target(fund, scope)
    before = snapshot(engine)
    for headers in ({}, bearer(fund.revoked), bearer("odd17_inconnu"),
                    {"Authorization": f"Basic {fund.secrets[scope]}"}):
        answer = send(api, path, body, ref, headers)
        assert answer.status_code == 401, (headers, answer.text)
        assert answer.headers["www-authenticate"] == "Bearer"
    for role in sorted(set(OWNERS) - {scope}):  # admin included: not a superset
        answer = send(api, path, body, ref, bearer(fund.secrets[role]))
        assert answer.status_code == 403, (role, answer.text)
        assert f"« {role} »" in answer.json()["detail"]
    assert snapshot(engine) == before  # nothing written by a refused call
    answer = send(api, path, body, ref, bearer(fund.secrets[scope]))
    assert answer.status_code in (200, 201), answer.text
    assert snapshot(engine) != before


@pytest.mark.parametrize(("path", "body", "scope"), ACTIONS)
def test_a_session_cookie_alone_does_not_authorise_a_write(
        api: TestClient, fund: Fund, engine: Engine, path: str, body: Any,
        scope: str) -> None:
    cookie, csrf = open_session(engine, Clock(), OWNERS[scope])
    browser = with_cookie(api, cookie)
    before = snapshot(engine)
    answer = send(browser, path, body, target(fund, scope), {"X-CSRF-Token": csrf})
    assert answer.status_code == 401, answer.text
    assert snapshot(engine) == before


@pytest.mark.parametrize(("path", "body", "scope"), ACTIONS[:5])
def test_an_unknown_reference_answers_404(api: TestClient, fund: Fund, engine: Engine,
                                          path: str, body: Any, scope: str) -> None:
    before = snapshot(engine)
    for ref in (UNKNOWN, "x" * 40):
        answer = send(api, path, body, ref, bearer(fund.secrets[scope]))
        assert answer.status_code in (404, 422), answer.text  # 422: too long for the body
        assert isinstance(answer.json()["detail"], str)
    assert send(api, path, body, UNKNOWN, bearer(fund.secrets[scope])).status_code == 404
    assert snapshot(engine) == before


def status_of(engine: Engine, ref: str) -> str:
    with engine.connect() as conn:
        return str(conn.execute(select(Application.status)
                                .where(Application.reference == ref)).scalar_one())


def test_manager_actions(api: TestClient, fund: Fund, engine: Engine) -> None:
    auth = bearer(fund.secrets["manager"])
    first, second = fund.eligible
    verdict = api.post(f"/api/v1/applications/{first.lower()}/evaluation", headers=auth)
    assert verdict.status_code == 200
    assert verdict.json() == {"reference": first, "previous": "eligible", "status": "eligible",
                              "failing": []}
    code, out, err = cli("evaluate", second, "--json")  # the CLI's shape, item for item
    assert code == 0, err
    assert set(json.loads(out)[0]) == set(verdict.json())

    made = api.post(f"/api/v1/applications/{first}/comments", headers=auth,
                    json={"body": " <b>Pièce</b> manquante "})
    assert made.status_code == 201
    assert made.json()["body"] == "<b>Pièce</b> manquante"
    assert made.json()["author"] == f"api:{STAFF['manager']}"
    shown = api.get(f"/api/v1/applications/{first}", headers=auth).json()
    assert shown["status"] == "eligible"

    assigned = api.post(f"/api/v1/applications/{first}/assignment", headers=auth)
    assert assigned.status_code == 200, assigned.text
    assert set(assigned.json()) == {"assigned", "short"}
    assert len(assigned.json()["assigned"][first]) == 2
    assert status_of(engine, first) == Status.in_review
    again = api.post(f"/api/v1/applications/{first}/assignment", headers=auth)
    assert again.status_code == 409 and "n'est pas éligible" in again.json()["detail"]
    late = api.post(f"/api/v1/applications/{first}/evaluation", headers=auth)
    assert late.status_code == 409 and "ne se réévalue plus" in late.json()["detail"]

    one = api.post(f"/api/v1/applications/{second}/reviewers", headers=auth,
                   json={"reviewers": [FREE[0]]})
    assert one.status_code == 409 and "2 évaluateur(s) à désigner" in one.json()["detail"]
    chosen = api.post(f"/api/v1/applications/{second}/reviewers", headers=auth,
                      json={"reviewers": [FREE[1].upper(), FREE[0]]})
    assert chosen.status_code == 200, chosen.text
    assert chosen.json() == {"assigned": {second: [FREE[1], FREE[0]]}, "short": {}}
    assert status_of(engine, second) == Status.in_review


@pytest.mark.parametrize(("path", "body", "field"), [
    ("comments", {}, "body"),
    ("comments", {"body": ""}, "body"),
    ("comments", {"body": "x", "extra": 1}, "extra"),
    ("comments", {"body": "x" * 10_001}, "body"),
    ("reviewers", {"reviewers": []}, "reviewers"),
    ("reviewers", {"reviewers": "a@b.org"}, "reviewers"),
    ("reviewers", None, "(corps)"),
])
def test_unreadable_bodies_answer_422_in_french(api: TestClient, fund: Fund, engine: Engine,
                                                path: str, body: Any, field: str) -> None:
    before = snapshot(engine)
    answer = api.post(f"/api/v1/applications/{fund.eligible[0]}/{path}", json=body,
                      headers=bearer(fund.secrets["manager"]))
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert problem["detail"].startswith("requête invalide : ")
    assert [e["field"] for e in problem["errors"]] == [field]
    assert not any(word in problem["detail"] for word in ("Field required", "Input should"))
    assert snapshot(engine) == before


def test_a_payment_then_the_same_again_then_refusals(api: TestClient, fund: Fund,
                                                     engine: Engine) -> None:
    auth = bearer(fund.secrets["finance"])
    ref, other = fund.approved
    body = {"reference": ref.lower(), "tranche": 1, "payment_reference": "VIR-API-7",
            "date": DAY, "amount": "10000.50"}
    paid = api.post("/api/v1/payments", json=body, headers=auth)
    assert paid.status_code == 201, paid.text
    assert paid.json() == {"reference": ref, "tranche": 1, "payment_reference": "VIR-API-7",
                           "recorded": True, "amount": "10000.50"}
    assert status_of(engine, ref) == Status.active
    before = snapshot(engine)
    again = api.post("/api/v1/payments", json=body, headers=auth)  # a retry: nothing new
    assert again.status_code == 200 and again.json()["recorded"] is False
    assert snapshot(engine) == before

    for changes, message in (
            ({"tranche": 2}, "déjà utilisée par un autre versement"),
            ({"payment_reference": "VIR-API-8", "tranche": 2}, "doit être versée"),
            ({"payment_reference": "VIR-API-9", "amount": "99999999.00"}, ""),
            ({"payment_reference": "VIR-API-10", "tranche": 9}, "pas de tranche n°9"),
            ({"payment_reference": "VIR-API-11",
              "date": (dt.date.today() + dt.timedelta(days=3)).isoformat()}, "")):
        refused = api.post("/api/v1/payments", json={**body, **changes}, headers=auth)
        assert refused.status_code == 409, (changes, refused.text)
        assert message in refused.json()["detail"]
    assert snapshot(engine) == before
    code, out, err = cli("pay", other, "--tranche", "1", "--reference", "VIR-CLI-1", "--date",
                         DAY, "--json")
    assert code == 0, err
    assert set(json.loads(out)) == set(paid.json())


@pytest.mark.parametrize(("changes", "field"), [
    ({"amount": 45000}, "amount"),            # a JSON number: never, money is a string
    ({"amount": 45000.5}, "amount"),
    ({"amount": "12,50"}, "amount"),
    ({"amount": "0"}, "(corps)"),             # read, then refused by the amount's rule
    ({"date": "31/12/2026"}, "date"),
    ({"date": 20261231}, "date"),
    ({"tranche": "1"}, "tranche"),
    ({"tranche": True}, "tranche"),
    ({"payment_reference": ""}, "payment_reference"),
    ({"montant": "1.00"}, "montant"),
])
def test_bad_payments_answer_422_in_french(api: TestClient, fund: Fund, engine: Engine,
                                           changes: dict[str, Any], field: str) -> None:
    body = {"reference": fund.approved[0], "tranche": 1, "payment_reference": "VIR-X",
            "date": DAY, **changes}
    before = snapshot(engine)
    answer = api.post("/api/v1/payments", json=body, headers=bearer(fund.secrets["finance"]))
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    if field == "(corps)":
        assert "montant invalide « 0 »" in problem["detail"]
    else:
        assert [e["field"] for e in problem["errors"]] == [field]
    assert snapshot(engine) == before


def test_a_statement_line_by_line(api: TestClient, fund: Fund, engine: Engine) -> None:
    auth = {**bearer(fund.secrets["finance"]), "Content-Type": "application/x-ndjson"}
    ref, other = fund.approved
    lines = [json.dumps({"reference": ref, "tranche": 1, "payment_reference": "VIR-REL-1",
                         "date": DAY}),
             '{"reference": "ODD17-1999-9999", "tranche": 1, "payment_reference": "VIR-REL-2",'
             f' "date": "{DAY}"}}',
             "pas du JSON",
             json.dumps({"reference": other, "tranche": 0, "payment_reference": "VIR-REL-3",
                         "date": DAY})]
    text = "\n".join(lines) + "\n"
    tally = api.post("/api/v1/payments/statement", content=text, headers=auth)
    assert tally.status_code == 200, tally.text
    found = tally.json()
    assert (found["recorded"], found["already_recorded"]) == (1, 0)
    assert [r["source"] for r in found["refused"]] == ["ligne 2", "ligne 3", "ligne 4"]
    assert "tmp" not in tally.text  # no server path
    replay = api.post("/api/v1/payments/statement", content=text, headers=auth).json()
    assert (replay["recorded"], replay["already_recorded"]) == (0, 1)
    wrong = api.post("/api/v1/payments/statement", content=text,
                     headers={**auth, "Content-Type": "text/csv"})
    assert wrong.status_code == 415 and "x-ndjson" in wrong.json()["detail"]
    big = api.post("/api/v1/payments/statement", content=b"\n" * (5 * 1024 * 1024 + 1),
                   headers=auth)
    assert big.status_code == 413


def test_reads_answer_422_in_french_too(api: TestClient, fund: Fund) -> None:
    answer = api.get("/api/v1/applications?limit=0", headers=bearer(fund.secrets["admin"]))
    assert answer.status_code == 422
    assert answer.json()["errors"] == [{"field": "limit",
                                        "message": "doit être supérieur ou égal à 1"}]
