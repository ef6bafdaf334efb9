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
from odd17.services import ledger
from rules.tranches import DEFAULT_PLAN
from tests.factories import in_committee
from tests.test_cli import cli

NOW = dt.datetime(2026, 12, 2, 10, 0, tzinfo=dt.UTC)


def approved(engine: Engine, count: int, amount: str = "100000") -> list[str]:
    refs = in_committee(engine, count)
    with unit_of_work(engine) as s:
        for ref in refs:
            ledger.approve(s, ref, Decimal(amount), plan=DEFAULT_PLAN, actor="c", now=NOW,
                           alert_threshold=Decimal("0.1"))
    return refs


def test_pay_through_the_cli(engine: Engine) -> None:
    [ref] = approved(engine, 1)
    code, out, _ = cli("pay", ref, "--tranche", "1", "--reference", "VIR-001", "--date",
                       "2026-12-03", "--json")
    assert code == 0
    assert json.loads(out) == {"reference": ref, "tranche": 1, "payment_reference": "VIR-001",
                               "recorded": True, "amount": "50000.00"}
    code, out, _ = cli("pay", ref, "--tranche", "1", "--reference", "VIR-001", "--json")
    assert code == 0 and json.loads(out)["recorded"] is False
    code, _, err = cli("pay", ref, "--tranche", "1", "--reference", "VIR-002")
    assert code == 2 and "déjà été versée le 2026-12-03" in err
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
    csv_file.write_text(
        "reference,tranche,payment_reference,date,amount\n"
        f"{a},1,VIR-A1,2026-12-05,\n"
        f"{b},1,VIR-B1,2026-12-05,40000\n"
        f"{b},1,VIR-B1bis,2026-12-06,\n"          # tranche already paid: refused
        f"{c},2,VIR-C2,2026-12-06,\n"             # out of order: refused
        "ODD17-2026-9999,1,VIR-X,2026-12-06,\n"   # unknown application: refused
        f"{c},1,VIR-C1,pas une date,\n"           # malformed: refused
    )
    summary = disbursement_flow(payment_files=[str(csv_file)], as_of=dt.date(2026, 12, 31))
    assert (summary["recorded"], summary["already_recorded"]) == (2, 0)
    assert [r["source"].rsplit(":", 1)[1] for r in summary["refused"]] == ["4", "5", "6", "7"]
    assert "déjà été versée" in summary["refused"][0]["error"]
    assert [(t["reference"], t["tranche"]) for t in summary["tranches_due"]] == [(c, 1)]
    assert summary["envelope"]["disbursed"] == "90000.00"
    again = disbursement_flow(payment_files=[str(csv_file)], as_of=dt.date(2026, 12, 31))
    assert (again["recorded"], again["already_recorded"]) == (0, 2)  # nothing twice
    with unit_of_work(engine) as s:
        assert ledger.check(s) == []
