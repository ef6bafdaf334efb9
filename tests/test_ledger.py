"""The envelope ledger on a real database: reservation, payments, releases, the check."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import Engine, select, text, update
from sqlalchemy.exc import DBAPIError

from models import Application, DomainError, Grant, IllegalTransition, LedgerEntry, Status
from odd17.db import unit_of_work
from odd17.services import audit, finance, ledger, queries
from rules.tranches import DEFAULT_PLAN
from tests.factories import as_uow, in_committee, uow_on

NOW = dt.datetime(2026, 12, 2, 10, 0, tzinfo=dt.UTC)
T = Decimal("0.10")
D = Decimal


def approve(engine: Engine, ref: str, amount: str, **kw) -> ledger.Result:  # type: ignore[no-untyped-def]
    with unit_of_work(engine) as s:
        return ledger.approve(as_uow(s, now=NOW, actor="comite"), ref, D(amount),
                              plan=DEFAULT_PLAN, **kw)


def pay(engine: Engine, ref: str, n: int, pref: str, **kw) -> ledger.Result:  # type: ignore[no-untyped-def]
    with unit_of_work(engine) as s:
        return ledger.pay(as_uow(s, now=NOW, actor="dfi"), ref, n, pref, paid_on=NOW.date(), **kw)


def end(engine: Engine, ref: str, cancel: bool, reason: str = "motif") -> ledger.Result:
    with unit_of_work(engine) as s:
        return ledger.end_grant(as_uow(s, now=NOW, actor="dfi"), ref, cancel=cancel, reason=reason)


def report(engine: Engine) -> dict:  # type: ignore[type-arg]
    with unit_of_work(engine) as s:
        return finance.finance_report(uow_on(s))


def breaches(engine: Engine) -> list[str]:
    with unit_of_work(engine) as s:
        return audit.check(uow_on(s))


def test_init_opens_the_envelope_once(engine: Engine) -> None:
    r = report(engine)
    assert (r["envelope"], r["committed"], r["disbursed"], r["available"]) == (
        "2000000.00", "0.00", "0.00", "2000000.00")
    assert breaches(engine) == []


def test_approval_reserves_and_creates_tranches(engine: Engine) -> None:
    [ref] = in_committee(engine, 1, requested="150000.00")
    result = approve(engine, ref, "100000.01")
    assert result.recorded and result.moved and result.moved.available == D("1899999.99")
    with unit_of_work(engine) as s:
        app = s.scalars(select(Application).where(Application.reference == ref)).one()
        detail = finance.grant_detail(s, app)
        assert app.status == Status.approved
    assert detail is not None
    assert [t["amount"] for t in detail["tranches"]] == ["50000.00", "30000.00", "20000.01"]
    assert [t["due_on"] for t in detail["tranches"]] == ["2026-12-02", "2028-03-01",
                                                         "2029-03-01"]
    r = report(engine)
    assert (r["committed"], r["available"], r["grants"]) == ("100000.01", "1899999.99", 1)
    assert r["by_objective"] == [{"key": "experimentation", "committed": "100000.01",
                                  "disbursed": "0.00", "grants": 1}]
    assert breaches(engine) == []


def test_retried_approval_commits_once(engine: Engine) -> None:
    [ref] = in_committee(engine, 1)
    assert approve(engine, ref, "50000").recorded
    again = approve(engine, ref, "50000")
    assert not again.recorded
    assert report(engine)["committed"] == "50000.00"


def test_approval_that_does_not_fit_changes_nothing(engine: Engine) -> None:
    refs = in_committee(engine, 11, requested="200000.00")
    for ref in refs[:10]:
        approve(engine, ref, "200000")
    before = report(engine)
    assert before["available"] == "0.00"
    with pytest.raises(ledger.EnvelopeExceeded, match="l'enveloppe disponible \\(0,00"):
        approve(engine, refs[10], "0.01")
    assert report(engine) == before
    with unit_of_work(engine) as s:
        assert queries.application_detail(uow_on(s), refs[10])["status"] == "committee"
        assert s.scalar(select(Grant).join(Application).where(
            Application.reference == refs[10])) is None
    assert breaches(engine) == []


def test_approval_that_only_partly_fits_is_refused(engine: Engine) -> None:
    refs = in_committee(engine, 11, requested="200000.00")
    for ref in refs[:9]:
        approve(engine, ref, "200000")
    approve(engine, refs[9], "150000")  # 50,000.00 left
    with pytest.raises(ledger.EnvelopeExceeded, match="50\u202f000,00"):
        approve(engine, refs[10], "50000.01")
    approve(engine, refs[10], "50000.00")  # exactly what is left fits
    assert report(engine)["available"] == "0.00"


@pytest.mark.parametrize(("amount", "message"), [
    ("0", "doit être positif"), ("100000.01", "dépasse le montant demandé")])
def test_approval_amount_is_checked(engine: Engine, amount: str, message: str) -> None:
    [ref] = in_committee(engine, 1)
    with pytest.raises(DomainError, match=message):
        approve(engine, ref, amount)


def test_approval_needs_the_committee_status(engine: Engine) -> None:
    [ref] = in_committee(engine, 1)
    approve(engine, ref, "1000")
    with pytest.raises(IllegalTransition):
        approve(engine, ref, "1000", key="another-key")


def test_payments_in_order_then_close_releases_the_rest(engine: Engine) -> None:
    [ref] = in_committee(engine, 1)
    approve(engine, ref, "100000")
    assert pay(engine, ref, 1, "VIR-1").recorded
    with unit_of_work(engine) as s:
        assert queries.application_detail(uow_on(s), ref)["status"] == "active"
    again = pay(engine, ref, 1, "VIR-1")
    assert not again.recorded  # the same reference records nothing new
    with pytest.raises(DomainError, match="déjà été versée"):
        pay(engine, ref, 1, "VIR-1b")
    with pytest.raises(DomainError, match="déjà utilisée"):
        pay(engine, ref, 2, "VIR-1")
    with pytest.raises(DomainError, match="pas de tranche n°4"):
        pay(engine, ref, 4, "VIR-4")
    with pytest.raises(DomainError, match="tranche n°2 doit être versée avant"):
        pay(engine, ref, 3, "VIR-3")
    with pytest.raises(DomainError, match="dépasse ce qui reste à verser"):
        pay(engine, ref, 2, "VIR-2", amount=D("50000.01"))
    pay(engine, ref, 2, "VIR-2", amount=D("25000"))  # a reduced tranche
    r = report(engine)
    assert (r["committed"], r["disbursed"], r["available"]) == (
        "25000.00", "75000.00", "1900000.00")
    result = end(engine, ref, cancel=False)
    assert result.amount == D("25000.00")
    r = report(engine)
    assert (r["committed"], r["disbursed"], r["available"], r["grants"]) == (
        "0.00", "75000.00", "1925000.00", 1)
    with pytest.raises(DomainError, match="statut « closed »"):
        pay(engine, ref, 3, "VIR-3")
    assert breaches(engine) == []


def test_cancel_releases_and_refuses_payments(engine: Engine) -> None:
    [ref] = in_committee(engine, 1)
    approve(engine, ref, "80000")
    pay(engine, ref, 1, "P1")
    with pytest.raises(DomainError, match="motivée"):
        end(engine, ref, cancel=True, reason=" ")
    end(engine, ref, cancel=True, reason="projet abandonné")
    r = report(engine)
    assert (r["committed"], r["disbursed"], r["grants"]) == ("0.00", "40000.00", 0)
    with pytest.raises(DomainError, match="statut « cancelled »"):
        pay(engine, ref, 2, "P2")
    with pytest.raises(IllegalTransition):
        end(engine, ref, cancel=True)
    assert breaches(engine) == []


def test_envelope_alert_raised_once_per_crossing(engine: Engine) -> None:
    refs = in_committee(engine, 10, requested="200000.00")
    raised = [approve(engine, ref, "190000").moved.alert_raised for ref in refs]  # type: ignore[union-attr]
    # available after each: 1.81M ... 0.29M, 0.10M; the alert is raised under 200,000 once
    assert raised == [False] * 9 + [True]
    assert report(engine)["alert"] is True
    end(engine, refs[0], cancel=True)  # back above the threshold: reset
    assert report(engine)["alert"] is False


def test_ledger_is_append_only(engine: Engine) -> None:
    for statement in ("UPDATE ledger_entries SET amount = 1", "DELETE FROM ledger_entries"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))


def test_database_refuses_an_overcommitting_balance(engine: Engine) -> None:
    with pytest.raises(DBAPIError), unit_of_work(engine) as s:
        s.execute(text("UPDATE balances SET committed = envelope + 1 WHERE dimension = 'total'"))


def test_check_names_a_tampered_balance(engine: Engine) -> None:
    [ref] = in_committee(engine, 1)
    approve(engine, ref, "10000")
    with unit_of_work(engine) as s:  # someone edits the grant behind the ledger's back
        s.execute(update(Grant).values(disbursed=D("5000")))
    found = breaches(engine)
    assert any("versé/libéré de la subvention" in b for b in found)
    assert any("tranches payées" in b for b in found)


def test_ledger_entries_carry_running_balances(engine: Engine) -> None:
    [a, b] = in_committee(engine, 2)
    approve(engine, a, "10000")
    approve(engine, b, "20000")
    pay(engine, a, 1, "X")
    with unit_of_work(engine) as s:
        rows = s.execute(select(LedgerEntry.kind, LedgerEntry.amount,
                                LedgerEntry.committed_after, LedgerEntry.disbursed_after)
                         .order_by(LedgerEntry.id)).all()
    assert [(str(k), str(a_), str(c), str(d)) for k, a_, c, d in rows] == [
        ("topup", "2000000.00", "0.00", "0.00"),
        ("commit", "10000.00", "10000.00", "0.00"),
        ("commit", "20000.00", "30000.00", "0.00"),
        ("disburse", "5000.00", "25000.00", "5000.00"),
    ]


def test_a_changed_configured_envelope_does_not_rewrite_the_ledger(
        engine: Engine, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from pathlib import Path

    from tests.test_cli import cli

    default = (Path(__file__).parent.parent / "odd17/data/fund.toml").read_text()
    bigger = tmp_path / "fund.toml"
    bigger.write_text(default.replace('envelope = "2000000.00"', 'envelope = "3000000.00"'))
    monkeypatch.setenv("ODD17_FUND_CONFIG", str(bigger))
    code, out, err = cli("init")
    assert code == 0 and "2\u202f000\u202f000,00" in out and "odd17 topup" in err
    assert report(engine)["envelope"] == "2000000.00"
    assert breaches(engine) == []
