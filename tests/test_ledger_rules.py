"""Issue 9 on the ledger: extreme project dates, tranche amounts and partial payments, payment
dates, top-up bounds and corrections, and the tranche audit of ``finance --check``."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from alembic import command
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy import Engine, select, text, update
from sqlalchemy.exc import DBAPIError

from models import Application, DomainError, LedgerEntry, NotFound, Tranche
from odd17.db import unit_of_work
from odd17.services import finance, ledger, setup
from rules.tranches import DateOutOfRange, add_months, due_date
from tests.factories import as_uow, in_committee, uow_on
from tests.test_cli import cli
from tests.test_ledger import NOW, approve, breaches, pay, report

D = Decimal


def grant(engine: Engine, ref: str) -> dict:  # type: ignore[type-arg]
    with unit_of_work(engine) as s:
        app = s.scalars(select(Application).where(Application.reference == ref)).one()
        detail = finance.grant_detail(s, app)
    assert detail is not None
    return detail


def due(engine: Engine, on: dt.date = dt.date(2100, 1, 1)) -> list[tuple[int, str, str]]:
    with unit_of_work(engine) as s:
        return [(r["tranche"], r["amount"], r["left"]) for r in finance.tranches_due(uow_on(s), on)]


def set_start(engine: Engine, ref: str, start: str, months: int = 24) -> None:
    """An application whose dates escaped intake's bounds (older data, another intake path)."""
    with unit_of_work(engine) as s:
        app = s.scalars(select(Application).where(Application.reference == ref)).one()
        app.document = {**app.document, "start_date": start, "duration_months": months}


# --- item 5: the tranche schedule is total ------------------------------------------------

@given(day=st.dates(), months=st.integers(0, 2400), signed=st.dates(),
       due_at=st.sampled_from(["signature", "mid_term", "end"]))
@example(day=dt.date(9999, 12, 31), months=24, signed=dt.date(2026, 12, 2), due_at="mid_term")
@example(day=dt.date(9999, 12, 31), months=1, signed=dt.date(2026, 12, 2), due_at="end")
@example(day=dt.date(9999, 12, 31), months=0, signed=dt.date.max, due_at="end")
@example(day=dt.date(2028, 1, 31), months=1, signed=dt.date.min, due_at="end")
def test_due_dates_are_total(day: dt.date, months: int, signed: dt.date, due_at: str) -> None:
    try:
        result = due_date(due_at, signed_on=signed, start=day, months=months)  # type: ignore[arg-type]
    except DateOutOfRange as exc:
        assert "dépasse le calendrier" in str(exc)
        assert day.year + (day.month - 1 + months) // 12 > 9999
        return
    assert result >= signed
    if due_at == "end":
        end = add_months(day, months)
        assert result == max(signed, end) and end.day <= day.day


@pytest.mark.parametrize(("start", "months", "refusal"), [
    ("9999-12-31", 24, "dépasse le calendrier"), ("9999-06-30", 12, "dépasse le calendrier"),
    ("31/12/9999", 12, "date de début ou durée illisible"), ("9998-01-31", 12, None),
    ("0001-01-01", 36, None)])
def test_extreme_start_dates_through_the_approval(engine: Engine, start: str, months: int,
                                                  refusal: str | None) -> None:
    [ref] = in_committee(engine, 1)
    set_start(engine, ref, start, months)
    before = report(engine)
    if refusal is None:
        assert approve(engine, ref, "1000").recorded
        assert grant(engine, ref)["tranches"][0]["due_on"] == "2026-12-02"
    else:
        with pytest.raises(DomainError, match=rf"échéances des tranches incalculables \(début "
                                              rf"{start}, durée {months} mois\) : .*{refusal}"):
            approve(engine, ref, "1000")
        assert report(engine) == before
    assert breaches(engine) == []


def test_committee_decision_with_a_year_9999_start_is_refused_cleanly(engine: Engine) -> None:
    from tests.test_review_cycle import people

    [ref] = in_committee(engine, 1)
    set_start(engine, ref, "9999-12-31")
    people(engine)
    present = "m0@comite.example.org,m1@comite.example.org,m2@comite.example.org"
    code, _, err = cli("committee", "decide", ref, "--approve", "--present", present)
    assert code == 2 and "Traceback" not in err and "dépasse le calendrier" in err
    detail = json.loads(cli("show", ref, "--json")[1])
    assert detail["status"] == "committee" and detail["grant"] is None
    assert "incalculables" in detail["decision"]["error"]
    assert report(engine)["committed"] == "0.00"


# --- item 6: tranche amounts, partial payments ---------------------------------------------

def test_a_tranche_is_never_overpaid(engine: Engine) -> None:
    [ref] = in_committee(engine, 1)
    approve(engine, ref, "45000.50")
    with pytest.raises(DomainError, match="45\u202f000,50\xa0€ dépasse ce qui reste à verser sur "
                                          "la tranche n°1 \\(22\u202f500,25\xa0€ sur"):
        pay(engine, ref, 1, "V1", amount=D("45000.50"))
    with pytest.raises(DomainError, match="tranche n°1"):
        pay(engine, ref, 1, "V1", amount=D("22500.26"))
    assert report(engine)["disbursed"] == "0.00"
    assert due(engine) == [(1, "22500.25", "22500.25"), (2, "13500.15", "13500.15"),
                           (3, "9000.10", "9000.10")]
    assert breaches(engine) == []


def test_partial_payments_leave_the_tranche_due_for_the_rest(engine: Engine) -> None:
    [ref] = in_committee(engine, 1)
    approve(engine, ref, "45000.50")
    assert pay(engine, ref, 1, "V1a", amount=D("1")).amount == D("1.00")
    assert due(engine)[0] == (1, "22500.25", "22499.25")
    t1 = grant(engine, ref)["tranches"][0]
    assert (t1["paid_amount"], t1["paid_on"], t1["payment_reference"]) == ("1.00", None, "V1a")
    with pytest.raises(DomainError, match="tranche n°1 doit être versée avant la tranche n°2 "
                                          "\\(reste 22\u202f499,25"):
        pay(engine, ref, 2, "V2", amount=D("1"))
    with pytest.raises(DomainError, match="22\u202f499,25\xa0€ sur 22\u202f500,25"):
        pay(engine, ref, 1, "V1b", amount=D("22499.26"))
    code, out, _ = cli("tranches", "--date", "2100-01-01", "--json")
    assert code == 0 and [(r["tranche"], r["amount"], r["paid"], r["left"])
                          for r in json.loads(out)] == [
        (1, "22500.25", "1.00", "22499.25"), (2, "13500.15", "0.00", "13500.15"),
        (3, "9000.10", "0.00", "9000.10")]
    code, out, _ = cli("tranches", "--date", "2100-01-01")
    assert code == 0 and "22\u202f499,25" in out and "à verser" in out
    assert pay(engine, ref, 1, "V1b").amount == D("22499.25")  # the rest, by default
    assert pay(engine, ref, 2, "V2").amount == D("13500.15")
    assert pay(engine, ref, 3, "V3a", amount=D("9000.09")).recorded
    assert pay(engine, ref, 3, "V3b").amount == D("0.01")
    with pytest.raises(DomainError, match="déjà été versée le 2026-12-02 \\(référence V3b\\)"):
        pay(engine, ref, 3, "V3c", amount=D("0.01"))
    detail = grant(engine, ref)
    assert [(t["paid_amount"], t["paid_on"]) for t in detail["tranches"]] == [
        ("22500.25", "2026-12-02"), ("13500.15", "2026-12-02"), ("9000.10", "2026-12-02")]
    assert (detail["disbursed"], detail["outstanding"]) == ("45000.50", "0.00")
    assert due(engine) == []
    assert breaches(engine) == []


def test_a_partly_paid_tranche_is_released_on_closing(engine: Engine) -> None:
    [ref] = in_committee(engine, 1)
    approve(engine, ref, "10000")
    pay(engine, ref, 1, "V1", amount=D("4000"))
    with unit_of_work(engine) as s:
        result = ledger.end_grant(as_uow(s, now=NOW, actor="t"), ref, cancel=False, reason="fin")
    assert result.amount == D("6000.00") and due(engine) == []
    assert breaches(engine) == []


@pytest.mark.parametrize("statement", [
    "UPDATE tranches SET paid_amount = amount + 1",                       # beyond the tranche
    "UPDATE tranches SET paid_on = '2026-12-02' WHERE number = 2",         # paid, not in full
    "UPDATE tranches SET paid_on = NULL WHERE number = 1",                 # in full, not paid
    "UPDATE tranches SET paid_amount = 0, paid_on = NULL WHERE number = 1",
])
def test_the_database_refuses_tranches_that_disagree(engine: Engine, statement: str) -> None:
    [ref] = in_committee(engine, 1)
    approve(engine, ref, "10000")
    pay(engine, ref, 1, "V1")
    pay(engine, ref, 2, "V2", amount=D("1"))
    with pytest.raises(DBAPIError), unit_of_work(engine) as s:
        s.execute(text(statement))


def test_check_names_tranches_and_payments_that_disagree(engine: Engine) -> None:
    [ref] = in_committee(engine, 1)
    approve(engine, ref, "10000")
    pay(engine, ref, 1, "V1", amount=D("2000"))
    with unit_of_work(engine) as s:  # the payment moved to tranche 2 behind the ledger's back
        s.execute(update(Tranche).where(Tranche.number == 1).values(paid_amount=None))
        s.execute(update(Tranche).where(Tranche.number == 2).values(paid_amount=D("2000")))
    found = breaches(engine)
    assert f"{ref} tranche n°1 : payé 0.00 mais le grand livre y enregistre 2000.00" in found
    assert f"{ref} tranche n°2 : payé 2000.00 mais le grand livre y enregistre 0.00" in found
    assert (f"{ref} tranche n°2 : payée alors que la tranche n°1 ne l'est pas entièrement"
            in found)
    code, _, err = cli("finance", "--check")
    assert code == 1 and "le grand livre y enregistre" in err


# --- item 7: payment dates -----------------------------------------------------------------

@pytest.mark.parametrize(("day", "ok"), [
    ("1990-01-01", False), ("2026-12-01", False), ("2026-12-02", True), ("2026-12-03", False),
    ("2099-01-01", False)])
def test_payment_dates_between_the_approval_and_today(engine: Engine, day: str,
                                                      ok: bool) -> None:
    [ref] = in_committee(engine, 1)
    approve(engine, ref, "10000")
    paid_on = dt.date.fromisoformat(day)
    with unit_of_work(engine) as s:  # "today" is NOW's day, 2026-12-02
        def run() -> ledger.Result:
            return ledger.pay(as_uow(s, now=NOW, actor="t"), ref, 1, "V1", paid_on=paid_on)
        if ok:
            assert run().recorded
        else:
            with pytest.raises(DomainError, match=f"date de paiement {day} hors de la période "
                                                  "permise, du 2026-12-02 \\(accord\\) au "
                                                  "2026-12-02 \\(aujourd'hui\\)"):
                run()


def test_payment_dates_through_the_cli(engine: Engine) -> None:
    [ref] = in_committee(engine, 1)
    approve(engine, ref, "10000")  # approved 2026-12-02
    today = dt.date.today()
    for day in ("1990-01-01", (today + dt.timedelta(days=1)).isoformat()):
        code, _, err = cli("pay", ref, "--tranche", "1", "--reference", "V1", "--date", day)
        assert code == 2 and f"date de paiement {day} hors de la période permise" in err
    if today >= NOW.date():
        assert cli("pay", ref, "--tranche", "1", "--reference", "V1")[0] == 0


# --- item 8: top-ups: motif, bound, corrections, JSON ---------------------------------------

def test_topup_needs_a_motif_and_stays_under_the_configured_bound(engine: Engine) -> None:
    for motif in ("", "   "):
        code, _, err = cli("topup", "1000", "--motif", motif)
        assert code == 2 and "un abondement doit être motivé" in err
    code, _, err = cli("topup", "1000")
    assert code == 2 and "motivé" in err
    code, _, err = cli("topup", "999999999999.99", "--motif", "CA")
    assert code == 2 and "dépasse le plafond d'un abondement (10\u202f000\u202f000,00" in err
    assert "disbursement.max_topup" in err
    assert cli("topup", "10000000", "--motif", "CA")[0] == 0  # the bound itself is accepted
    assert report(engine)["envelope"] == "12000000.00"


def test_topup_json_and_correction(engine: Engine) -> None:
    code, out, _ = cli("topup", "500000", "--motif", "CA du 12 janvier", "--json")
    assert code == 0
    made = json.loads(out)
    assert made == {"entry": made["entry"], "kind": "topup", "corrects": None,
                    "amount": "500000.00", "motif": "CA du 12 janvier", "recorded": True,
                    "envelope": "2500000.00", "committed": "0.00", "disbursed": "0.00",
                    "available": "2500000.00"}
    again = json.loads(cli("topup", "500000", "--motif", "CA du 12 janvier", "--json")[1])
    assert (again["recorded"], again["entry"]) == (False, made["entry"])
    code, _, err = cli("topup", "--correct", str(made["entry"]), "--motif", " ")
    assert code == 2 and "une correction doit être motivée" in err
    code, out, _ = cli("topup", "--correct", str(made["entry"]), "--motif", "saisie en double",
                       "--json")
    assert code == 0
    fixed = json.loads(out)
    assert (fixed["kind"], fixed["corrects"], fixed["amount"], fixed["envelope"]) == (
        "correction", made["entry"], "500000.00", "2000000.00")
    code, _, err = cli("topup", "--correct", str(made["entry"]), "--motif", "encore")
    assert code == 2 and f"l'abondement n°{made['entry']} a déjà été corrigé" in err
    code, _, err = cli("topup", "--correct", str(fixed["entry"]), "--motif", "x")
    assert code == 2 and "seul un abondement (topup) peut être corrigé" in err
    code, _, err = cli("topup", "--correct", "999999", "--motif", "x")
    assert code == 2 and "aucune écriture n°999999" in err
    code, _, err = cli("topup", "1000", "--correct", "1", "--motif", "x")
    assert code == 2 and "soit un montant, soit --correct" in err
    with unit_of_work(engine) as s:
        entry = s.get(LedgerEntry, fixed["entry"])
        assert entry is not None and entry.note is not None
        assert entry.corrects_id == made["entry"] and "saisie en double" in entry.note
    assert breaches(engine) == []


def test_a_correction_never_makes_available_negative(engine: Engine) -> None:
    with unit_of_work(engine) as s:
        made = ledger.topup(as_uow(s, now=NOW, actor="t"), D("100000"), reason="CA", key="t1")
    refs = in_committee(engine, 11, requested="200000.00")
    for ref in refs[:10]:
        approve(engine, ref, "200000")
    approve(engine, refs[10], "50000")  # 50 000 left: less than the top-up
    before = report(engine)
    with pytest.raises(DomainError, match="rendrait le disponible négatif \\(disponible "
                                          "50\u202f000,00"), unit_of_work(engine) as s:
        ledger.correct_topup(as_uow(s, now=NOW, actor="t"), made.entry or 0, reason="erreur")
    assert report(engine) == before
    with pytest.raises(NotFound), unit_of_work(engine) as s:
        ledger.correct_topup(as_uow(s, now=NOW, actor="t"), 0, reason="erreur")


def test_the_database_refuses_a_second_correction(engine: Engine) -> None:
    with unit_of_work(engine) as s:
        made = ledger.topup(as_uow(s, now=NOW, actor="t"), D("1000"), reason="CA", key="t1")
        ledger.correct_topup(as_uow(s, now=NOW, actor="t"), made.entry or 0, reason="erreur")
    with pytest.raises(DBAPIError), unit_of_work(engine) as s:
        s.execute(text(
            "INSERT INTO ledger_entries (fund_id, kind, amount, idempotency_key, at, actor, "
            "envelope_after, committed_after, disbursed_after, corrects_id) "
            "SELECT fund_id, 'correction', amount, 'again', at, actor, envelope_after, "
            f"committed_after, disbursed_after, corrects_id FROM ledger_entries "
            f"WHERE corrects_id = {made.entry}"))


# --- the migration re-spreads old payments over the tranches --------------------------------

def test_migration_respreads_old_overpayments(engine: Engine) -> None:
    [ref, reduced] = in_committee(engine, 2)
    approve(engine, ref, "45000.50")
    approve(engine, reduced, "10000")
    pay(engine, ref, 1, "V1")
    pay(engine, reduced, 1, "R1", amount=D("3000"))
    cfg = setup.alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0005_outbox_reliability")
    with engine.begin() as conn:  # what the old code wrote: the whole award on tranche 1,
        conn.execute(text(          # and a reduced tranche marked paid
            "UPDATE tranches SET paid_amount = 4500050 WHERE payment_reference = 'V1'"))
        conn.execute(text("UPDATE tranches SET paid_on = '2026-12-02' "
                          "WHERE payment_reference = 'R1'"))
        conn.execute(text("UPDATE grants SET disbursed = 4500050 WHERE awarded = 4500050"))
    setup.upgrade(engine)
    assert [(t["paid_amount"], t["paid_on"]) for t in grant(engine, ref)["tranches"]] == [
        ("22500.25", "2026-12-02"), ("13500.15", "2026-12-02"), ("9000.10", "2026-12-02")]
    first = grant(engine, reduced)["tranches"][0]
    assert (first["paid_amount"], first["paid_on"]) == ("3000.00", None)  # due for the rest
