"""Two staff members at once (threads, one transaction each, started together): choosing the
reviewers of one application, revoking one token. Exactly one wins whatever the interleaving;
the other is told why and writes nothing. PostgreSQL (row locks, compare-and-set) and SQLite
(BEGIN IMMEDIATE) must agree."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, func, select

from models import Application, DomainError, OutboxMessage, Review, Status, StatusChange
from odd17.services import choosing, tokens
from odd17.uow import UnitOfWork
from tests.factories import eligible
from tests.review_support import uow
from tests.test_choosing_comments import people


def together(engine: Engine, *calls: Callable[[UnitOfWork], Any]) -> list[Any]:
    """Run each call in its own thread and transaction, released at once; each result or the
    DomainError it raised."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            with uow(engine) as u:
                results[i] = calls[i](u)
        except DomainError as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_two_managers_choose_reviewers_at_once(engine: Engine) -> None:
    for round_ in range(5):
        ref, = eligible(engine, 1, start=round_ * 10)
        if round_ == 0:
            people(engine)
        results = together(
            engine,
            lambda u, ref=ref: choosing.assign_chosen(u, ref, ["r0@eval.example.org",
                                                               "r1@eval.example.org"]),
            lambda u, ref=ref: choosing.assign_chosen(u, ref, ["r1@eval.example.org",
                                                               "r2@eval.example.org"]))
        won = [r for r in results if isinstance(r, list)]
        lost = [r for r in results if isinstance(r, DomainError)]
        assert len(won) == 1 and len(lost) == 1, results
        assert "in_review" in str(lost[0]) or "changé entre-temps" in str(lost[0])
        with uow(engine) as u:
            app_id = u.session.scalar(select(Application.id).where(
                Application.reference == ref))
            assert u.session.scalar(select(Application.status).where(
                Application.id == app_id)) == Status.in_review
            emails = sorted(r.reviewer.email for r in u.session.scalars(
                select(Review).where(Review.application_id == app_id)))
            assert emails == sorted(won[0])
            assert u.session.scalar(select(func.count()).select_from(StatusChange).where(
                StatusChange.application_id == app_id,
                StatusChange.to_status == Status.in_review)) == 1
            assert u.session.scalar(select(func.count()).select_from(OutboxMessage).where(
                OutboxMessage.reference == ref,
                OutboxMessage.event == "review_assigned")) == 2


def test_two_revocations_at_once(engine: Engine) -> None:
    people(engine)
    for _ in range(5):
        with uow(engine) as u:
            token_id = tokens.create(u, "r0@eval.example.org", "x")["token"]["id"]
        results = together(engine, lambda u, t=token_id: tokens.revoke(u, t),
                           lambda u, t=token_id: tokens.revoke(u, t))
        assert sorted(type(r).__name__ for r in results) == ["DomainError", "dict"], results
        assert "déjà révoqué" in str(next(r for r in results if isinstance(r, DomainError)))
