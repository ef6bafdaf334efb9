"""The ledger on the unit of work (issue 11) and its batches (issue 12): what a movement needs
besides the database comes from the unit of work's context, never from the global settings; a
bank statement is recorded in batches under one lock with the same outcomes, line by line, as
one transaction per line; ``finance --check`` checks the running balances in the database."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.orm import Session

from models import Balance, DomainError, EntryKind, LedgerEntry, OutboxMessage, Tranche
from models.ledger import TOTAL
from odd17.db import unit_of_work
from odd17.services import audit, ledger, payments
from odd17.services.balances import fund_id
from odd17.settings import get_fund_config
from odd17.uow import Context, Runner, UnitOfWork, open_uow
from rules.tranches import DEFAULT_PLAN
from tests.factories import in_committee
from tests.test_ledger import NOW, approve, breaches, report

D = Decimal


def context(**changes: object) -> Context:
    config = get_fund_config()
    threshold = changes.pop("alert_threshold", None)
    if threshold is not None:
        config = config.model_copy(update={"disbursement": config.disbursement.model_copy(
            update={"alert_threshold": threshold})})
    return Context(actor="dfi", config=config, clock=lambda: NOW, **changes)  # type: ignore[arg-type]


def test_the_alert_goes_to_the_contexts_finance_address_with_its_threshold(
        engine: Engine) -> None:
    [ref] = in_committee(engine, 1)
    ctx = context(finance_email="tresorerie@fonds.example.org", alert_threshold=D("0.99"))
    with open_uow(engine, ctx) as uow:
        assert ledger.approve(uow, ref, D("100000"), plan=DEFAULT_PLAN).moved.alert_raised  # type: ignore[union-attr]
    with unit_of_work(engine) as s:
        alert = s.scalars(select(OutboxMessage)
                          .where(OutboxMessage.event == "envelope_alert")).one()
    assert alert.recipient == "tresorerie@fonds.example.org"
    assert alert.context["threshold"] == "99 %"


@pytest.mark.parametrize(("timezone", "accepted"), [("Pacific/Kiritimati", True),
                                                     ("UTC", False)])
def test_the_payment_window_ends_today_in_the_contexts_zone(engine: Engine, timezone: str,
                                                            accepted: bool) -> None:
    [ref] = in_committee(engine, 1)
    approve(engine, ref, "10000")
    tomorrow_utc = NOW.date() + dt.timedelta(days=1)  # already today at UTC+14 (NOW is noon)
    assert NOW.hour >= 10

    def pay() -> ledger.Result:
        with open_uow(engine, context(timezone=timezone)) as uow:
            return ledger.pay(uow, ref, 1, "VIR-1", paid_on=tomorrow_utc)
    if accepted:
        assert pay().recorded
    else:
        with pytest.raises(DomainError, match="hors de la période permise"):
            pay()


def _statement(path: Path, lines: list[tuple[str, int, str]]) -> Path:
    path.write_text("reference,tranche,payment_reference,date\n" + "".join(
        f"{ref},{n},{pref},{NOW.date().isoformat()}\n" for ref, n, pref in lines))
    return path


@pytest.mark.parametrize("batch", [1, 2, 1000])
def test_a_statement_has_the_same_outcomes_whatever_the_batch(engine: Engine, tmp_path: Path,
                                                             batch: int) -> None:
    a, b = in_committee(engine, 2)
    approve(engine, a, "10000")
    approve(engine, b, "10000")
    path = _statement(tmp_path / "releve.csv", [
        (a, 1, "VIR-A1"),  # recorded
        (a, 2, "VIR-A2"),  # recorded: tranche 1 was paid by the line before, same batch
        (a, 1, "VIR-A1"),  # the same payment again: nothing new
        (b, 2, "VIR-B2"),  # refused: tranche 1 first
        (b, 1, "VIR-A2"),  # refused: the reference is another payment's
        (b, 1, "VIR-B1"),  # recorded
    ])
    tally = payments.record(Runner(engine, context()), payments.read_orders(path), batch=batch)
    assert (tally.recorded, tally.already) == (3, 1)
    assert [r["source"] for r in tally.refused] == [f"{path}:5", f"{path}:6"]  # line 1: the header
    assert "doit être versée avant" in tally.refused[0]["error"]
    assert "déjà utilisée" in tally.refused[1]["error"]
    assert report(engine)["disbursed"] == "13000.00"
    assert breaches(engine) == []  # running balances of the batch's entries included


def test_a_batch_the_database_refuses_is_recorded_line_by_line(engine: Engine,
                                                              tmp_path: Path) -> None:
    a, b, c = in_committee(engine, 3)
    for ref in (a, b, c):
        approve(engine, ref, "10000")
    with unit_of_work(engine) as s:  # a reference on a tranche the ledger knows nothing of
        s.execute(update(Tranche).where(Tranche.number == 3, Tranche.grant_id == select(
            Tranche.grant_id).where(Tranche.number == 3).order_by(Tranche.id).limit(1)
            .scalar_subquery()).values(payment_reference="VIR-X"))
    path = _statement(tmp_path / "releve.csv", [(a, 1, "VIR-A"), (b, 1, "VIR-X"),
                                                (c, 1, "VIR-C")])
    tally = payments.record(Runner(engine, context()), payments.read_orders(path))
    assert tally.recorded == 2
    assert [r["source"] for r in tally.refused] == [f"{path}:3"]
    assert "VIR-X" in tally.refused[0]["error"]
    assert report(engine)["disbursed"] == "10000.00"


def _entry(uow: UnitOfWork, kind: EntryKind, amount: str, key: str, *, after: tuple[str, ...],
           grant_id: int | None = None, entry_id: int | None = None) -> None:
    envelope, committed, disbursed = (D(x) for x in after)
    uow.session.execute(insert(LedgerEntry.__table__).values(
        **({"id": entry_id} if entry_id else {}), fund_id=fund_id(uow.session), kind=kind,
        amount=D(amount), idempotency_key=key, at=NOW, actor="intrus", note=None,
        grant_id=grant_id, envelope_after=envelope, committed_after=committed,
        disbursed_after=disbursed))


def test_check_names_entries_whose_balances_or_grant_are_wrong(engine: Engine) -> None:
    [ref] = in_committee(engine, 1)
    approve(engine, ref, "10000")
    assert breaches(engine) == []
    with open_uow(engine, context()) as uow:  # written behind the services' back
        _entry(uow, EntryKind.topup, "100", "forged-1",
               after=("2000100.01", "10000.00", "0.00"))
    found = breaches(engine)
    [forged] = [b for b in found if "soldes recalculés" in b]
    assert "(2000100.01, 10000.00, 0.00)" in forged and "(2000100.00, 10000.00, 0.00)" in forged
    assert any(b.startswith("solde du fonds") for b in found)
    with open_uow(engine, context()) as uow:
        _entry(uow, EntryKind.commit, "5", "forged-2",
               after=("2000100.00", "10005.00", "0.00"))
    found = breaches(engine)
    assert any("(commit) : sans subvention" in b for b in found)
    assert not any("forged-2" in b or "soldes recalculés (2000100.00, 10005.00" in b
                   for b in found)  # its balances follow from the entries before it


def test_check_follows_the_entries_across_a_gap_in_their_ids(engine: Engine) -> None:
    # A sequence skips the ids of rolled-back inserts (PostgreSQL): the entry after a gap
    # follows the fund's last entry before it, not an entry id - 1 that does not exist.
    [ref] = in_committee(engine, 1)
    approve(engine, ref, "10000")
    with open_uow(engine, context()) as uow:
        last = uow.session.scalars(select(LedgerEntry).order_by(LedgerEntry.id.desc())).first()
        assert last is not None
        gap, after = last.id + 7, (last.envelope_after + 100, last.committed_after,
                                   last.disbursed_after)
        _entry(uow, EntryKind.topup, "100", "after-a-gap", after=tuple(map(str, after)),
               entry_id=gap)
        uow.session.execute(update(Balance).where(Balance.dimension == TOTAL)
                            .values(envelope=after[0]))
    assert breaches(engine) == []
    with unit_of_work(engine) as s:  # found so by the quick path, not by the replay
        assert audit._chain_holds(s, fund_id(s)) == after
    with open_uow(engine, context()) as uow:  # after another gap, balances that do not follow
        _entry(uow, EntryKind.topup, "1", "wrong-after-a-gap", after=tuple(map(str, after)),
               entry_id=gap + 5)
    found = breaches(engine)
    assert [b for b in found if b.startswith("entrée")] == [
        f"entrée n°{gap + 5} : soldes enregistrés ({after[0]}, {after[1]}, {after[2]}) "
        f"différents des soldes recalculés ({after[0] + 1}, {after[1]}, {after[2]})"]
    assert any(b.startswith("solde du fonds") for b in found)


# Entries: (the gap in ids before it, its amount, an error in its recorded envelope), in cents
LEDGERS = st.lists(st.tuples(st.integers(0, 3), st.integers(1, 500), st.integers(-2, 2)),
                   max_size=12)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(LEDGERS)
def test_the_chain_check_agrees_with_the_replay(engine: Engine,
                                                entries: list[tuple[int, int, int]]) -> None:
    # The quick path (each entry against its predecessor) passes exactly the ledgers the
    # replay (running sums over every entry) finds sound, with the same totals.
    with engine.connect() as connection, connection.begin() as transaction:
        session = Session(connection)
        fund = fund_id(session)
        last = session.scalars(select(LedgerEntry).order_by(LedgerEntry.id.desc())).first()
        assert last is not None
        entry_id, envelope = last.id, last.envelope_after
        for n, (gap, cents, error) in enumerate(entries):
            entry_id, amount = entry_id + 1 + gap, D(cents) / 100
            envelope += amount
            session.execute(insert(LedgerEntry.__table__).values(
                id=entry_id, fund_id=fund, kind=EntryKind.topup, amount=amount,
                idempotency_key=f"chain-{n}", at=NOW, actor="test", envelope_after=envelope
                + D(error) / 100, committed_after=last.committed_after,
                disbursed_after=last.disbursed_after))
        replay, totals = audit._entry_breaches(session, fund)
        chain = audit._chain_holds(session, fund)
        assert (chain is None) == bool(replay), (entries, replay)
        assert chain is None or chain == totals
        transaction.rollback()


def test_the_award_bounds_are_one_rule() -> None:
    from rules.awards import award_refusal

    assert award_refusal(D("0"), D("10")) == "le montant accordé doit être positif"
    assert "dépasse le montant demandé" in (award_refusal(D("10.01"), D("10")) or "")
    assert award_refusal(D("10"), D("10")) is None
