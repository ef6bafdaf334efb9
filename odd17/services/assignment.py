"""Assigning reviewers (README, « Committee review »), and the conflicts of interest every
step of the review checks.

Conflicts are computed from the stored document each time they matter (assignment, scoring,
voting) and every one found is recorded as a recusal with its reason.

``assign`` handles thousands of applications per call (``odd17 review assign --all``): it
reads them by batch (one query for their documents, one for their recusals), writes reviews,
recusals, e-mails and history rows with one bulk INSERT each per batch, and moves the batch to
``in_review`` with one compare-and-set UPDATE whose count is checked; no ORM object is loaded
for the applications, so nothing is flushed or loaded row by row."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, func, insert, inspect, select
from sqlalchemy.orm import Session

from models import (
    Application,
    Recusal,
    Review,
    Reviewer,
    Status,
)
from models.application import move_many
from notifications import payloads
from notifications.outbox import enqueue, message
from odd17.uow import UnitOfWork
from rules.review import ConflictIndex, parties, pick_reviewers

BATCH = 500  # applications per read and per bulk write: bounded memory, few statements

APPLICATIONS: Table = Application.__table__
REVIEWS: Table = Review.__table__
RECUSALS: Table = Recusal.__table__


def index(people: Sequence[Reviewer]) -> ConflictIndex:
    return ConflictIndex((p.id, p.siren, p.interests) for p in people)


def record_recusals(session: Session, found: dict[int, dict[int, str]], now: dt.datetime,
                    ) -> None:
    """Record ``found`` (application id -> reviewer id -> reason) as recusals, those not
    already recorded, in one INSERT."""
    if not found:
        return
    known = set(session.execute(
        select(Recusal.application_id, Recusal.reviewer_id)
        .where(Recusal.application_id.in_(found))).tuples())
    rows = [{"application_id": app_id, "reviewer_id": reviewer_id, "reason": reason, "at": now}
            for app_id, by_reviewer in found.items()
            for reviewer_id, reason in by_reviewer.items() if (app_id, reviewer_id) not in known]
    if rows:
        session.execute(insert(RECUSALS), rows)


def conflicted(uow: UnitOfWork, app: Application, people: Sequence[Reviewer]) -> dict[int, str]:
    """Reviewer id -> reason, for those conflicted on ``app``; each is recorded as a recusal."""
    found = index(people).find(parties(app.document))
    record_recusals(uow.session, {app.id: found} if found else {}, uow.now)
    return found


@dataclass(slots=True)
class Assignment:
    assigned: dict[str, list[str]] = field(default_factory=dict)    # reference -> emails
    short: dict[str, int] = field(default_factory=dict)             # reference -> available


def assign(uow: UnitOfWork, references: list[str] | None = None) -> Assignment:
    """Give each eligible application ``reviewers_per_application`` non-conflicted reviewers,
    fewest current assignments first (ties by email), and move it to ``in_review``. One that
    cannot get enough stays ``eligible`` and is reported."""
    session = uow.session
    session.flush()  # what the caller added is written; from here on, Core statements only
    query = select(Application.id).where(Application.status == Status.eligible)
    if references:
        query = query.where(Application.reference.in_([r.strip().upper() for r in references]))
    # Locked in id order: a concurrent assigner waits, then (READ COMMITTED re-checks the
    # status) finds them in review and skips them; no duplicate assignment is ever tried.
    ids = list(session.scalars(query.order_by(Application.id)
                               .with_for_update(of=APPLICATIONS)))
    reviewers = session.scalars(select(Reviewer).where(Reviewer.reviews, Reviewer.active)
                                .order_by(Reviewer.email)).all()
    load = dict.fromkeys((r.id for r in reviewers), 0)
    load.update(session.execute(
        select(Review.reviewer_id, func.count()).join(Application)
        .where(Review.scored_at.is_(None), Application.status == Status.in_review)
        .group_by(Review.reviewer_id)).tuples().all())
    batch = _Batch(uow, index(reviewers), {r.email: r for r in reviewers}, load)
    result = Assignment()
    with session.no_autoflush:
        for start in range(0, len(ids), BATCH):
            batch.run(ids[start:start + BATCH], result)
    _expire_moved(session, batch.moved)
    return result


@dataclass
class _Batch:
    """One batch of ``assign``: read, choose, then write everything with bulk statements."""

    uow: UnitOfWork
    conflicts: ConflictIndex
    by_email: dict[str, Reviewer]
    load: dict[int, int]  # reviewer id -> reviews not yet scored, every reviewer
    people: list[tuple[int, str]] = field(init=False)  # (id, email): plain, read per app
    ids: dict[str, int] = field(init=False)
    moved: set[int] = field(default_factory=set)  # application ids moved to in_review

    def __post_init__(self) -> None:
        self.people = [(r.id, r.email) for r in self.by_email.values()]
        self.ids = {email: id_ for id_, email in self.people}

    def run(self, ids: list[int], result: Assignment) -> None:
        session, now = self.uow.session, self.uow.now
        needed, load = self.uow.config.review.reviewers_per_application, self.load
        rows = session.execute(
            select(APPLICATIONS.c.id, APPLICATIONS.c.reference, APPLICATIONS.c.title,
                   APPLICATIONS.c.region, APPLICATIONS.c.requested_amount,
                   APPLICATIONS.c.document)
            .where(APPLICATIONS.c.id.in_(ids)).order_by(APPLICATIONS.c.id)).all()
        found: dict[int, dict[int, str]] = {}
        chosen_by_app: list[tuple[Any, list[str]]] = []
        for row in rows:
            excluded = self.conflicts.find(parties(row.document))
            if excluded:
                found[row.id] = excluded
            candidates = [(email, load[id_]) for id_, email in self.people
                          if id_ not in excluded]
            if len(candidates) < needed:
                result.short[row.reference] = len(candidates)
                continue
            chosen = pick_reviewers(candidates, needed)
            for email in chosen:
                load[self.ids[email]] += 1
            chosen_by_app.append((row, chosen))
            self.moved.add(row.id)
            result.assigned[row.reference] = chosen
        record_recusals(session, found, now)
        if chosen_by_app:
            write_assignments(self.uow, self.by_email, chosen_by_app)


def write_assignments(uow: UnitOfWork, by_email: dict[str, Reviewer],
                      chosen_by_app: Sequence[tuple[Any, list[str]]]) -> None:
    """Assign reviewers with bulk statements: their reviews, their e-mails, and the move of
    every application to ``in_review`` (one compare-and-set from ``eligible``, its count
    checked). ``chosen_by_app`` pairs an application (row or ORM object: id, reference, title,
    region, requested_amount) with the emails chosen for it, each a key of ``by_email``. The
    caller has locked the applications and checked the reviewers (``assign``, or
    choosing.assign_chosen); an ORM object moved here is stale until expired."""
    session, now = uow.session, uow.now
    session.execute(insert(REVIEWS), [
        {"application_id": row.id, "reviewer_id": by_email[email].id, "assigned_at": now}
        for row, chosen in chosen_by_app for email in chosen])
    enqueue(session, [message(payloads.ReviewAssigned(
        reference=row.reference, title=row.title, reviewer_name=by_email[email].name,
        reviewer_email=email, region=row.region, requested_amount=row.requested_amount),
        email, key=f"review_assigned:{row.reference}:{email}", now=now,
        reference=row.reference)
        for row, chosen in chosen_by_app for email in chosen])
    move_many(session, {row.id: f"évaluateurs désignés : {', '.join(chosen)}"
                       for row, chosen in chosen_by_app},
             Status.eligible, Status.in_review, actor=uow.actor, at=now)


def _expire_moved(session: Session, moved: set[int]) -> None:
    """Applications of this session's identity map that moved are read again on next use
    (their status and history were written without the ORM)."""
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Application):
            identity = inspect(obj).identity  # read without loading anything
            if identity is not None and identity[0] in moved:
                session.expire(obj)
