"""The JSON of ``odd17 show`` and ``odd17 list`` (README, « `--json` shapes »): keys in their
order and the JSON type of each value, pinned; and the typed read models of
odd17/services/queries.py declare exactly those keys, so a renderer or the web portal reading
them by key reads what ``--json`` prints."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine
from typer.testing import CliRunner

from odd17.cli import app
from odd17.db import unit_of_work
from odd17.services import ledger
from odd17.services.queries import ApplicationDetail, ApplicationRow, LeadView, StatusChangeView
from odd17.settings import reset_caches
from rules.tranches import DEFAULT_PLAN
from tests.factories import as_uow, in_committee

NONE = type(None)
SHOW: dict[str, tuple[type, ...]] = {
    "reference": (str,), "call": (str,), "status": (str,), "title": (str,),
    "summary": (str, NONE), "lead": (dict,), "partners": (list,), "objectives": (list,),
    "innovations": (list,), "territory": (dict, NONE), "requested_amount": (str,),
    "total_budget": (str,), "cofunding": (list,), "start_date": (str, NONE),
    "duration_months": (int, NONE), "documents": (list,), "submitted_at": (str, NONE),
    "source": (str, NONE), "eligibility": (list,), "eligibility_ruleset": (str, NONE),
    "eligibility_policy": (str, NONE), "evaluated_at": (str, NONE), "reviews": (list,),
    "score": (str, NONE), "recusals": (list,), "decision": (dict, NONE), "grant": (dict, NONE),
    "history": (list,),
}
LEAD = {"name": (str,), "kind": (str,), "siret": (str, NONE), "rna": (str, NONE),
        "email": (str, NONE)}
HISTORY = {"from": (str, NONE), "to": (str,), "actor": (str,), "at": (str,), "reason": (str,)}
RULE = {"rule": (str,), "passed": (bool,), "reason": (str,)}
LIST = {"reference": (str,), "status": (str,), "title": (str,), "call": (str,),
        "primary_objective": (str, NONE), "region": (str, NONE), "department": (str, NONE),
        "requested_amount": (str,), "submitted_at": (str, NONE)}
GRANT = ["awarded", "disbursed", "released", "outstanding", "approved_at", "tranches"]
NOW = dt.datetime(2026, 12, 2, 10, 0, tzinfo=dt.UTC)


def cli(*args: str) -> Any:
    reset_caches()
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def typed_as(value: dict[str, Any], shape: dict[str, tuple[type, ...]]) -> None:
    assert list(value) == list(shape)
    wrong = {k: type(v).__name__ for k, v in value.items() if not isinstance(v, shape[k])}
    assert wrong == {}


def test_show_json_keys_order_and_types(engine: Engine) -> None:
    [ref] = in_committee(engine, 1)
    with unit_of_work(engine) as s:  # a grant: the fullest detail
        ledger.approve(as_uow(s, now=NOW, actor="c"), ref, Decimal("60000.50"),
                       plan=DEFAULT_PLAN)
    detail = cli("show", ref, "--json")
    typed_as(detail, SHOW)
    typed_as(detail["lead"], LEAD)
    assert detail["eligibility"]
    for rule in detail["eligibility"]:
        typed_as(rule, RULE)
    assert [h["to"] for h in detail["history"]] == ["submitted", "eligible", "in_review",
                                                    "committee", "approved"]
    for change in detail["history"]:
        typed_as(change, HISTORY)
    assert list(detail["grant"]) == GRANT and detail["grant"]["awarded"] == "60000.50"
    assert detail["requested_amount"] == "100000.00"
    dt.datetime.fromisoformat(detail["submitted_at"])


def test_list_json_keys_order_and_types(engine: Engine) -> None:
    refs = in_committee(engine, 2)
    rows = cli("list", "--json")
    assert [r["reference"] for r in rows] == refs
    for row in rows:
        typed_as(row, LIST)
    assert cli("list", "--json", "--limit", "1", "--page", "2") == rows[1:]


def test_the_read_models_declare_the_json_keys() -> None:
    assert list(ApplicationDetail.__annotations__) == list(SHOW)
    assert list(ApplicationRow.__annotations__) == list(LIST)
    assert list(LeadView.__annotations__) == list(LEAD)
    assert list(StatusChangeView.__annotations__) == list(HISTORY)
