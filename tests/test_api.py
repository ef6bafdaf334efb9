"""The JSON API (odd17/web/api.py): bearer tokens (401 without or with a bad one, 403 with a
token of another role), 404 for an unknown application, the bodies equal to the CLI's
``--json`` on the same data, and the OpenAPI document checked by schemathesis in-process
(no 5xx, every response conforming to the schema)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from sqlalchemy import Engine

from odd17.db import unit_of_work
from odd17.services import ledger, tokens
from odd17.web.app import create_app
from rules.tranches import DEFAULT_PLAN
from tests.factories import as_uow, in_committee
from tests.test_cli import cli
from tests.webutil import MEMBER, REVIEWER, STAFF, Clock, add_people, uow_at

NOW = dt.datetime.combine(dt.date.today() - dt.timedelta(days=20), dt.time(10), dt.UTC)
ENDPOINTS = ("/api/v1/applications", "/api/v1/applications/{ref}", "/api/v1/finance",
             "/api/v1/tranches")
# who may read what: (endpoint, scope) -> expected status
ALLOWED = {"/api/v1/applications": {"manager", "finance", "admin"},
           "/api/v1/applications/{ref}": {"manager", "finance", "admin"},
           "/api/v1/finance": {"finance", "manager"},
           "/api/v1/tranches": {"finance", "manager"}}
OWNERS = {**STAFF, "reviewer": REVIEWER, "committee": MEMBER}


def fund(engine: Engine) -> tuple[list[str], dict[str, str]]:
    """Three applications, two approved (first tranches due), one paid; a token per role."""
    refs = in_committee(engine, 3)
    with unit_of_work(engine) as s:
        for ref in refs[:2]:
            ledger.approve(as_uow(s, now=NOW, actor="c"), ref, Decimal("100000"),
                           plan=DEFAULT_PLAN)
        ledger.pay(as_uow(s, now=NOW, actor="f"), refs[0], 1, "VIR-API-1", paid_on=NOW.date())
    secrets: dict[str, str] = {}
    with uow_at(engine, Clock()) as uow:
        add_people(uow)
        for role, owner in OWNERS.items():
            secrets[role] = tokens.create(uow, owner, f"jeton {role}")["secret"]
    return refs, secrets


@pytest.fixture
def data(engine: Engine) -> tuple[list[str], dict[str, str]]:
    return fund(engine)


@pytest.fixture
def api(engine: Engine) -> TestClient:
    return TestClient(create_app(engine=engine, clock=Clock()))


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_without_a_valid_token_every_endpoint_answers_401(
        api: TestClient, data: tuple[list[str], dict[str, str]], engine: Engine) -> None:
    refs, secrets = data
    with uow_at(engine, Clock()) as uow:
        revoked = tokens.create(uow, STAFF["finance"], "révoqué")
        tokens.revoke(uow, revoked["token"]["id"])
    for path in ENDPOINTS:
        url = path.replace("{ref}", refs[0])
        for headers in ({}, bearer("odd17_inconnu"), bearer(revoked["secret"]),
                        {"Authorization": f"Basic {secrets['finance']}"}, bearer("")):
            answer = api.get(url, headers=headers)
            assert answer.status_code == 401, (url, headers, answer.text)
            assert answer.headers["www-authenticate"] == "Bearer"
            assert "jeton" in answer.json()["detail"]


@pytest.mark.parametrize("role", sorted(OWNERS))
def test_each_scope_gets_200_where_allowed_and_403_elsewhere(
        role: str, api: TestClient, data: tuple[list[str], dict[str, str]]) -> None:
    refs, secrets = data
    for path, allowed in ALLOWED.items():
        answer = api.get(path.replace("{ref}", refs[0]), headers=bearer(secrets[role]))
        expected = 200 if role in allowed else 403
        assert answer.status_code == expected, (path, answer.text)
        if expected == 403:
            assert f"« {role} »" in answer.json()["detail"]


def test_a_token_stops_working_when_its_owner_loses_the_role(
        api: TestClient, data: tuple[list[str], dict[str, str]], engine: Engine) -> None:
    _, secrets = data
    from sqlalchemy import update

    from models import User

    assert api.get("/api/v1/finance", headers=bearer(secrets["finance"])).status_code == 200
    with unit_of_work(engine) as s:
        s.execute(update(User).where(User.email == STAFF["finance"]).values(disabled=True))
    assert api.get("/api/v1/finance", headers=bearer(secrets["finance"])).status_code == 401


def test_an_unknown_application_answers_404(api: TestClient,
                                             data: tuple[list[str], dict[str, str]]) -> None:
    _, secrets = data
    for ref in ("ODD17-1999-9999", "x" * 200, "%00"):
        answer = api.get(f"/api/v1/applications/{ref}", headers=bearer(secrets["manager"]))
        assert answer.status_code == 404
        assert "detail" in answer.json()


def _cli_json(*args: str) -> Any:
    code, out, err = cli(*args, "--json")
    assert code == 0, err
    return json.loads(out)


def test_the_bodies_are_the_cli_json(api: TestClient,
                                     data: tuple[list[str], dict[str, str]]) -> None:
    refs, secrets = data
    headers = bearer(secrets["finance"])
    page = api.get("/api/v1/applications?limit=2&page=2", headers=headers)
    assert page.json() == _cli_json("list", "--limit", "2", "--page", "2")
    assert page.headers["x-total-count"] == "3" and len(page.json()) == 1
    assert api.get("/api/v1/applications?limit=500", headers=headers).json() == \
        _cli_json("list")
    assert api.get("/api/v1/applications?status=approved", headers=headers).json() == \
        _cli_json("list", "--status", "approved")
    for ref in refs:
        assert api.get(f"/api/v1/applications/{ref.lower()}", headers=headers).json() == \
            _cli_json("show", ref)
    report = api.get("/api/v1/finance", headers=headers).json()
    assert report == _cli_json("finance")
    assert report["committed"] == "150000.00" and len(report["tranches_due"]) == 1
    assert api.get("/api/v1/tranches", headers=headers).json() == _cli_json("tranches")
    day = NOW.date().isoformat()
    assert api.get(f"/api/v1/tranches?date={day}", headers=headers).json() == \
        _cli_json("tranches", "--date", day)


def test_bad_parameters_are_refused_not_crashed(api: TestClient,
                                                data: tuple[list[str], dict[str, str]]) -> None:
    _, secrets = data
    for query in ("limit=0", "limit=501", "page=0", "status=inconnu", "limit=abc"):
        answer = api.get(f"/api/v1/applications?{query}", headers=bearer(secrets["admin"]))
        assert answer.status_code == 422, query
    assert api.get("/api/v1/tranches?date=31/12/2026",
                   headers=bearer(secrets["finance"])).status_code == 422


def test_the_openapi_document_is_the_apis_only(api: TestClient) -> None:
    document = api.get("/api/v1/openapi.json").json()
    assert sorted(document["paths"]) == [
        "/applications", "/applications/{reference}", "/applications/{reference}/assignment",
        "/applications/{reference}/comments", "/applications/{reference}/evaluation",
        "/applications/{reference}/reviewers", "/finance", "/payments", "/payments/statement",
        "/tranches"]
    payment = document["components"]["schemas"]["PaymentIn"]["properties"]["amount"]
    assert {"type": "string", "pattern": "^[0-9]{1,12}(\\.[0-9]{1,2})?$"} in payment["anyOf"]
    for path, operations in document["paths"].items():  # every refusal is documented
        for method, operation in operations.items():
            assert {"401", "403", "422"} <= set(operation["responses"]), (method, path)
    assert document["servers"] == [{"url": "/api/v1"}]
    assert "HTTPBearer" in document["components"]["securitySchemes"]
    assert api.get("/openapi.json").status_code == 404  # the pages have none
    assert api.get("/api/v1/docs").status_code == 404


# --- schemathesis: generated requests against the documented schema, in-process -------------

# the statement's body is text (JSON Lines): generated as text/plain is
schemathesis.serializer.alias("application/x-ndjson", "text/plain")


def scope_of(path: str) -> str:
    """The token that opens an operation: the finance officer's for the payments, the
    manager's for the rest (reads included)."""
    return "finance" if path.startswith("/payments") else "manager"


def test_the_api_conforms_to_its_schema(engine: Engine) -> None:
    """Generated requests on every operation, reads and writes, each with a token of its
    role: no 5xx, each status documented, each body valid against its schema, each refusal
    without the token a 401. Derandomized: the same examples at every run."""
    _, secrets = fund(engine)
    app = create_app(engine=engine, clock=Clock())
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 10
    for operation in operations:
        auth = bearer(secrets[scope_of(operation.path)])

        @given(case=operation.as_strategy())
        @settings(max_examples=20, derandomize=True, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def conforms(case: Any) -> None:
            case.call_and_validate(headers=auth)  # noqa: B023 - called right here

        conforms()


def test_the_write_examples_conform_and_write(engine: Engine) -> None:
    """The documented actions on real references (not only the 404s generated requests
    mostly meet): each answer conforms to the schema, and a payment's replay is a 200."""
    refs, secrets = fund(engine)
    app = create_app(engine=engine, clock=Clock())
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
    day = NOW.date().isoformat()
    calls = [
        ("POST", "/applications/{reference}/comments", {"reference": refs[2]},
         {"body": "Relu"}, 201),
        ("POST", "/applications/{reference}/evaluation", {"reference": refs[2]}, None, 409),
        ("POST", "/applications/{reference}/assignment", {"reference": refs[2]}, None, 409),
        ("POST", "/applications/{reference}/reviewers", {"reference": refs[2]},
         {"reviewers": [REVIEWER]}, 409),
        ("POST", "/payments", None, {"reference": refs[1], "tranche": 1,
                                     "payment_reference": "VIR-EX-1", "date": day}, 201),
        ("POST", "/payments", None, {"reference": refs[1], "tranche": 1,
                                     "payment_reference": "VIR-EX-1", "date": day}, 200),
        ("POST", "/payments", None, {"reference": refs[1], "tranche": 1,
                                     "payment_reference": "VIR-EX-2", "date": day}, 409),
        ("POST", "/payments/statement", None,
         json.dumps({"reference": refs[1], "tranche": 1, "payment_reference": "VIR-EX-1",
                     "date": day}) + "\n", 200),
    ]
    for method, path, parameters, body, expected in calls:
        operation = schema[path][method]
        given_body: dict[str, Any] = {} if body is None else {
            "body": body,
            "media_type": "application/x-ndjson" if isinstance(body, str) else "application/json"}
        case = operation.Case(path_parameters=parameters, **given_body)
        response = case.call_and_validate(headers=bearer(secrets[scope_of(path)]))
        assert response.status_code == expected, (path, response.text)
