"""What an approval does while it holds the fund's total balance row (issue 12): every approval
locks that row, so whatever runs between taking it and COMMIT serialises all writers. Counted
statement by statement (no timing): after the statement that takes the lock, only the entry,
the day's, objective and region rows and the commit follow (PostgreSQL: one statement and
the commit), whether the
approval comes from the ledger or from a committee decision with its email; and an approval
runs a bounded number of statements in all."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select

from models import (
    Balance,
    ConcurrentChange,
    EntryKind,
    Grant,
    LedgerDay,
    LedgerEntry,
    OutboxMessage,
    Reviewer,
    Status,
)
from models.dialect import is_postgresql
from models.ledger import TOTAL
from models.lookup import application_by_reference
from odd17.db import unit_of_work
from odd17.services import audit, committee, ledger
from odd17.services.balances import fund_id, move_and_record
from rules.tranches import DEFAULT_PLAN
from tests.factories import as_uow, in_committee, runner_for, uow_on

NOW = dt.datetime(2027, 1, 4, 9, 0, tzinfo=dt.UTC)
MEMBERS = [f"membre{i}@fonds.example.org" for i in range(3)]
# the statements that take the total row's lock: its conditional UPDATE (alone, or as the
# first CTE of the statement that also writes the entry), or a SELECT … FOR UPDATE of it
TAKES_TOTAL = re.compile(r"UPDATE balances SET envelope|FROM balances.*FOR UPDATE", re.S)
AFTER_LOCK_SQLITE = ("INSERT INTO balances", "INSERT INTO ledger_entries",
                     "INSERT INTO ledger_days")


@contextmanager
def recorded(engine: Engine) -> Iterator[list[str]]:
    """The statements run on ``engine`` meanwhile, in order, with COMMIT and without BEGIN."""
    statements: list[str] = []

    def execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.startswith("BEGIN"):  # SQLite's BEGIN IMMEDIATE (db.py)
            statements.append(" ".join(statement.split()))

    def commit(_conn: Any) -> None:
        statements.append("COMMIT")

    event.listen(engine, "before_cursor_execute", execute)
    event.listen(engine, "commit", commit)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", execute)
        event.remove(engine, "commit", commit)


def under_lock(statements: list[str]) -> list[str]:
    """The statements from the one that takes the total row's lock to the COMMIT."""
    first = next(i for i, s in enumerate(statements) if TAKES_TOTAL.search(s))
    return statements[first:statements.index("COMMIT", first) + 1]


def check_lock_held_briefly(engine: Engine, statements: list[str]) -> None:
    held = under_lock(statements)
    assert held[-1] == "COMMIT"
    if is_postgresql(engine):  # the UPDATE, the entry, the day's and the dimension rows
        assert len(held) == 2, held
        assert all(f"INSERT INTO {table}" in held[0]
                   for table in ("ledger_entries", "ledger_days", "balances")), held
    else:
        assert [s.split(" (")[0] for s in held[1:-1]] == list(AFTER_LOCK_SQLITE), held


def test_an_approval_holds_the_total_row_for_its_move_entry_and_commit_only(
        engine: Engine) -> None:
    ref, other = in_committee(engine, 2)
    with unit_of_work(engine) as s:
        ledger.approve(as_uow(s, now=NOW), other, Decimal("100000.00"), plan=DEFAULT_PLAN)
    with recorded(engine) as statements, unit_of_work(engine) as s:
        result = ledger.approve(as_uow(s, now=NOW), ref, Decimal("100000.00"),
                                plan=DEFAULT_PLAN)
    assert result.recorded
    check_lock_held_briefly(engine, statements)
    # PostgreSQL: read the application, then one statement (its compare-and-set move and
    # history row, the grant and its tranches, the balance rows, the entry, the day's row),
    # COMMIT; SQLite: each apart
    if is_postgresql(engine):
        assert len(statements) == 3, statements
        assert all(f"INSERT INTO {table}" in statements[1] for table in (
            "status_changes", "grants", "tranches", "ledger_entries")), statements
    assert len(statements) <= 11, statements
    with unit_of_work(engine) as s:
        assert audit.check(uow_on(s)) == []


def test_a_committee_approval_writes_its_email_and_decision_before_taking_the_lock(
        engine: Engine) -> None:
    ref, other = in_committee(engine, 2)
    with unit_of_work(engine) as s:
        s.add_all(Reviewer(email=e, name=e, interests=[], reviews=False, committee=True,
                           active=True, created_at=NOW) for e in MEMBERS)
    run = runner_for(engine, now=NOW)
    committee.decide(run, other, "approve", present=MEMBERS, amount=None, motif="")
    with run.uow() as uow:
        decision = committee.record_decision(uow, ref, "approve", present=MEMBERS,
                                             amount=None, motif="").id
    with recorded(engine) as statements:
        result = committee.apply_recorded(run, decision)
    assert result is not None and result.recorded
    check_lock_held_briefly(engine, statements)
    before = statements[:statements.index(under_lock(statements)[0])]
    assert any(s.startswith("INSERT INTO outbox") for s in before)
    # PostgreSQL: the claim is a CTE of the SELECT that also loads the application
    assert any("UPDATE decisions SET applied_at" in s for s in before)
    assert len(statements) <= (4 if is_postgresql(engine) else 13), statements
    with unit_of_work(engine) as s:
        events = s.scalars(select(OutboxMessage.event)
                           .where(OutboxMessage.reference == ref)).all()
        assert events.count("decision_approved") == 1
        assert audit.check(uow_on(s)) == []


def test_a_move_whose_condition_fails_writes_no_entry_nor_day(engine: Engine) -> None:
    """The entry and the day's row read the UPDATE's RETURNING: when its condition does not
    hold, neither is written (seen inside the transaction, before any rollback)."""
    with unit_of_work(engine) as s:
        uow = as_uow(s, now=NOW)
        entries = s.scalar(select(func.count()).select_from(LedgerEntry))
        assert move_and_record(uow, fund_id(s), EntryKind.commit, Decimal("1.00"), "k",
                               note="n", committed=Decimal("1.00"),
                               need_available=Decimal("99999999.00")) is None
        assert s.scalar(select(func.count()).select_from(LedgerEntry)) == entries
        assert s.get(LedgerDay, (fund_id(s), NOW.date())) is None
        assert s.scalars(select(Balance.committed).where(Balance.dimension == TOTAL)).one() \
            == Decimal("0.00")


def test_an_application_moved_before_the_approval_statement_gets_nothing_written(
        engine: Engine) -> None:
    """PostgreSQL writes an approval's status move with its grant and balance rows, in one
    statement after the checks: an application another transaction moved in between makes
    it raise ConcurrentChange, with no grant, entry nor balance written."""
    if not is_postgresql(engine):
        pytest.skip("SQLite: BEGIN IMMEDIATE serialises the two transactions")
    (ref,) = in_committee(engine, 1)
    with unit_of_work(engine) as s:
        entries = s.scalar(select(func.count()).select_from(LedgerEntry))
    with unit_of_work(engine) as s:
        uow = as_uow(s, now=NOW)
        staged = ledger.stage_approval(uow, application_by_reference(s, ref),
                                       Decimal("100000.00"), plan=DEFAULT_PLAN)
        assert isinstance(staged, ledger.Staged) and staged.move is not None
        with unit_of_work(engine) as other:  # a refusal, committed meanwhile
            application_by_reference(other, ref).transition_to(
                Status.rejected, actor="autre", at=NOW, reason="refus")
        with pytest.raises(ConcurrentChange, match=ref):
            ledger.commit_approval(uow, staged)
        assert s.scalar(select(func.count()).select_from(Grant)) == 0
        assert s.scalar(select(func.count()).select_from(LedgerEntry)) == entries
        assert s.scalars(select(Balance.committed).where(Balance.dimension == TOTAL)).one() \
            == Decimal("0.00")
