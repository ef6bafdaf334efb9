"""Payments through the CLI and the disbursement flow; the finance report's outputs."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine

from flows.disbursement import disbursement_flow
from odd17.db import unit_of_work
from odd17.services import audit, ledger
from rules.tranches import DEFAULT_PLAN
from tests.factories import as_uow, in_committee, uow_on
from tests.test_cli import cli

# Approvals 20 days ago: payments may be dated from the approval day to today (real clock).
NOW = dt.datetime.combine(dt.date.today() - dt.timedelta(days=20), dt.time(10), dt.UTC)
DAY = [(NOW + dt.timedelta(days=n)).date().isoformat() for n in range(4)]


def approved(engine: Engine, count: int, amount: str = "100000") -> list[str]:
    refs = in_committee(engine, count)
    with unit_of_work(engine) as s:
        for ref in refs:
            ledger.approve(as_uow(s, now=NOW, actor="c"), ref, Decimal(amount), plan=DEFAULT_PLAN)
    return refs


def test_pay_through_the_cli(engine: Engine) -> None:
    [ref] = approved(engine, 1)
    code, out, _ = cli("pay", ref, "--tranche", "1", "--reference", "VIR-001", "--date",
                       DAY[1], "--json")
    assert code == 0
    assert json.loads(out) == {"reference": ref, "tranche": 1, "payment_reference": "VIR-001",
                               "recorded": True, "amount": "50000.00"}
    code, out, _ = cli("pay", ref, "--tranche", "1", "--reference", "VIR-001", "--json")
    assert code == 0 and json.loads(out)["recorded"] is False
    code, _, err = cli("pay", ref, "--tranche", "1", "--reference", "VIR-002")
    assert code == 2 and f"déjà été versée le {DAY[1]}" in err
    code, _, err = cli("pay", ref, "--tranche", "2", "--reference", "V3", "--amount", "1e9")
    assert code == 2 and "--amount : montant invalide" in err
    code, _, err = cli("pay", ref, "--tranche", "2", "--reference", "V3", "--date", "03/12")
    assert code == 2 and "--date : date invalide" in err
    detail = json.loads(cli("show", ref, "--json")[1])
    assert detail["status"] == "active"
    assert detail["grant"]["disbursed"] == "50000.00"
    assert detail["grant"]["tranches"][0]["payment_reference"] == "VIR-001"


def test_cancel_and_close_through_the_cli(engine: Engine) -> None:
    a, b = approved(engine, 2)
    code, out, _ = cli("grant", "cancel", a, "--motif", "porteur dissous", "--json")
    assert code == 0 and json.loads(out) == {"reference": a, "status": "cancelled",
                                             "released": "100000.00"}
    code, _, err = cli("grant", "close", b)
    assert code == 2 and "transition interdite" in err  # approved, not yet active
    cli("pay", b, "--tranche", "1", "--reference", "B1")
    code, out, _ = cli("grant", "close", b, "--json")
    assert json.loads(out)["released"] == "50000.00"
    report = json.loads(cli("finance", "--json")[1])
    assert (report["committed"], report["disbursed"], report["available"]) == (
        "0.00", "50000.00", "1950000.00")


def test_finance_outputs_and_check(engine: Engine, tmp_path: Path) -> None:
    approved(engine, 3, amount="60000.33")
    code, out, _ = cli("finance", "--json", "--check", "--html", str(tmp_path / "r.html"))
    assert code == 0
    report = json.loads(out)
    assert {"envelope", "committed", "disbursed", "available", "grants", "by_objective",
            "by_region", "history", "check"} <= set(report)
    assert report["committed"] == "180000.99" and report["check"] == []
    html = (tmp_path / "r.html").read_text()
    assert "<svg" in html and "180\u202f000,99\xa0€" in html
    assert "http://" not in html.replace("http://www.w3.org", "") and "<script" not in html
    code, out, _ = cli("finance")
    assert code == 0 and "disponible" in out


def test_check_exits_non_zero_naming_the_breach(engine: Engine) -> None:
    from sqlalchemy import text

    approved(engine, 1)
    with unit_of_work(engine) as s:
        s.execute(text("UPDATE grants SET released = 10"))  # behind the ledger's back
    code, _, err = cli("finance", "--check")
    assert code == 1 and "Invariant violé" in err and "versé/libéré" in err


def test_topup_is_idempotent(engine: Engine) -> None:
    assert cli("topup", "500000", "--motif", "CA du 12/01")[0] == 0
    assert "rien de nouveau" in cli("topup", "500000", "--motif", "CA du 12/01")[1]
    assert json.loads(cli("finance", "--json")[1])["envelope"] == "2500000.00"


def test_exports_through_the_cli(engine: Engine, tmp_path: Path) -> None:
    code, _, err = cli("export", "360giving", str(tmp_path / "g.json"))
    assert code == 2 and "aucune subvention" in err
    approved(engine, 2)
    assert cli("export", "scdl", str(tmp_path / "s.csv"))[0] == 0
    assert cli("export", "360giving", str(tmp_path / "g.json"))[0] == 0
    assert len((tmp_path / "s.csv").read_text().splitlines()) == 3
    assert len(json.loads((tmp_path / "g.json").read_text())["grants"]) == 2


@pytest.mark.usefixtures("prefect_server")
def test_disbursement_flow(engine: Engine, tmp_path: Path) -> None:
    a, b, c = approved(engine, 3)
    csv_file = tmp_path / "releve.csv"
    future = (dt.date.today() + dt.timedelta(days=400)).isoformat()
    csv_file.write_text(
        "reference,tranche,payment_reference,date,amount\n"
        f"{a},1,VIR-A1,{DAY[2]},\n"
        f"{b},1,VIR-B1,{DAY[2]},40000\n"           # a partial payment: 10 000 left
        f"{a},1,VIR-A1bis,{DAY[3]},\n"             # tranche already paid: refused
        f"{c},2,VIR-C2,{DAY[3]},\n"                # out of order: refused
        f"ODD17-2026-9999,1,VIR-X,{DAY[3]},\n"     # unknown application: refused
        f"{c},1,VIR-C1,pas une date,\n"             # malformed: refused
        f"{b},2,VIR-B2,{DAY[3]},\n"                # tranche 1 not paid in full: refused
        f"{a},2,VIR-A2,1990-01-01,\n"              # before the approval: refused
        f"{c},1,VIR-C1f,{future},\n"               # in the future: refused
    )
    as_of = dt.date.today() + dt.timedelta(days=10)
    summary = disbursement_flow(payment_files=[str(csv_file)], as_of=as_of)
    assert (summary["recorded"], summary["already_recorded"]) == (2, 0)
    assert [r["source"].rsplit(":", 1)[1] for r in summary["refused"]] == [
        "4", "5", "6", "7", "8", "9", "10"]
    errors = [r["error"] for r in summary["refused"]]
    assert "déjà été versée" in errors[0]
    assert "tranche n°1 doit être versée avant la tranche n°2 (reste 10\u202f000,00" in errors[4]
    assert f"date de paiement 1990-01-01 hors de la période permise, du {NOW.date()}" in errors[5]
    assert f"date de paiement {future} hors de la période permise" in errors[6]
    assert [(t["reference"], t["tranche"], t["left"]) for t in summary["tranches_due"]] == [
        (b, 1, "10000.00"), (c, 1, "50000.00")]
    assert summary["envelope"]["disbursed"] == "90000.00"
    again = disbursement_flow(payment_files=[str(csv_file)], as_of=as_of)
    assert (again["recorded"], again["already_recorded"]) == (0, 2)  # nothing twice
    with unit_of_work(engine) as s:
        assert audit.check(uow_on(s)) == []
