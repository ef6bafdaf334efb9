"""Organisations, applications, their status history and eligibility evaluations."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    bindparam,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, object_session, relationship
from sqlalchemy.orm.attributes import set_committed_value

from models.base import Base, Money, UTCDateTime, rows_matched
from models.bulk import insert_many
from models.dialect import is_postgresql
from models.errors import ConcurrentChange, IllegalTransition
from models.lifecycle import INITIAL, Status, check_transition, lost_race

RECEIVED = "dossier reçu"  # the meaning of an application's first history row


def history_row(
    application_id: int | None, current: Status | str | None, target: Status | str, *,
    actor: str, at: dt.datetime, reason: str | None = None, detail: str | None = None,
    reference: str = "",
) -> dict[str, Any]:
    """The one place a status-history row is made, for every path (``transition_to``, intake,
    eligibility in bulk): the move is checked against the lifecycle (``current`` None: the
    first row, into ``INITIAL`` only), and the reason defaults to the move's meaning, followed
    by ``detail`` when given. Raises ``IllegalTransition``."""
    if current is None:
        if Status(target) != INITIAL:
            raise IllegalTransition(f"{reference} : un dossier entre dans le cycle au statut "
                                    f"« {INITIAL.value} »")
        meaning = RECEIVED
    else:
        meaning = check_transition(current, target, reference)
    why = reason or (f"{meaning} : {detail}" if detail else meaning)
    return {"application_id": application_id,
            "from_status": None if current is None else Status(current),
            "to_status": Status(target), "actor": actor, "reason": why, "at": at}


def write_history(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert history rows made by :func:`history_row`, many at once (one executemany)."""
    if rows:
        insert_many(session, insert(StatusChange.__table__), rows)


def status_type(column: str) -> Enum:
    """A status column: VARCHAR plus a CHECK constraint named after the column (PostgreSQL
    wants constraint names unique per table)."""
    return Enum(
        Status,
        name=column,
        native_enum=False,
        create_constraint=True,
        length=20,
        values_callable=lambda enum: [member.value for member in enum],
    )


class Organisation(Base):
    """A legal body known to the fund, identified by SIRET, else RNA, else email."""

    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(primary_key=True)
    identifier: Mapped[str] = mapped_column(String(300), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    siret: Mapped[str | None] = mapped_column(String(20))
    rna: Mapped[str | None] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Application(Base):
    __tablename__ = "applications"
    __table_args__ = (
        UniqueConstraint("call_id", "dedup_key", name="uq_applications_call_dedup"),
        Index("ix_applications_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(30), unique=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id"))
    lead_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    dedup_key: Mapped[str] = mapped_column(String(600))
    status: Mapped[Status] = mapped_column(status_type("status"))
    title: Mapped[str] = mapped_column(String(200))
    contact_email: Mapped[str] = mapped_column(String(320))
    primary_objective: Mapped[str | None] = mapped_column(String(30))
    region: Mapped[str] = mapped_column(String(100))
    department: Mapped[str] = mapped_column(String(5))
    requested_amount: Mapped[Decimal] = mapped_column(Money)
    total_budget: Mapped[Decimal] = mapped_column(Money)
    source: Mapped[str | None] = mapped_column(String(500))
    # The validated document as submitted (normalised JSON): the applicant's own words.
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    submitted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    lead: Mapped[Organisation] = relationship(lazy="joined")
    history: Mapped[list[StatusChange]] = relationship(
        order_by="StatusChange.id", back_populates="application"
    )
    evaluations: Mapped[list[EligibilityEvaluation]] = relationship(
        order_by="EligibilityEvaluation.id", back_populates="application"
    )

    def transition_to(
        self, target: Status, *, actor: str, at: dt.datetime, reason: str | None = None
    ) -> StatusChange:
        """Move to ``target`` if the lifecycle allows it, appending the history row; raises
        ``IllegalTransition`` and changes nothing otherwise.

        A stored application moves by compare-and-set: ``UPDATE … WHERE id AND status =
        <the status this object holds>``, checked for one row. Another process that moved it
        first (PostgreSQL's READ COMMITTED re-checks the condition once that process commits)
        makes this raise ``ConcurrentChange``, so the caller's transaction writes nothing
        else: no second decision, email or ledger move."""
        current = Status(self.status)
        row = history_row(self.id, current, target, actor=actor, at=at, reason=reason,
                          reference=self.reference)
        # application_id: set by the relationship below (None before a flush)
        change = StatusChange(**{k: v for k, v in row.items() if k != "application_id"})
        session = object_session(self)
        if session is not None and inspect(self).persistent:
            if self._moves_by_statement(session):  # the move and its history row, one trip
                moved = session.execute(MOVE_WITH_HISTORY, _move_params(row, current, target))
                self.settle_move(target, at, len(moved.all()) == 1)
                return change  # written as is: not in the session
            table = Application.__table__
            moved_rows = rows_matched(session.execute(
                update(table).where(table.c.id == self.id, table.c.status == current)
                .values(status=target, updated_at=at)
            ))
            self.settle_move(target, at, moved_rows == 1)  # no second UPDATE at flush
            if "history" in inspect(self).unloaded:  # appending would load the whole history
                write_history(session, [row])
                return change  # written as is (Core): not in the session
        else:  # not stored yet: the INSERT at flush carries the new status
            self.status = target
            self.updated_at = at
        self.history.append(change)
        return change

    def _moves_by_statement(self, session: Session) -> bool:
        """PostgreSQL, stored, history not loaded: the move can be one ``MOVE_CTES``
        statement (a loaded history would need the new row appended to it)."""
        state = inspect(self)
        return state.persistent and is_postgresql(session) and "history" in state.unloaded

    def staged_move(self, target: Status, *, actor: str, at: dt.datetime,
                    reason: str | None = None) -> dict[str, Any] | None:
        """PostgreSQL, history not loaded: the parameters of ``MOVE_CTES`` for the move to
        ``target`` (checked against the lifecycle: raises ``IllegalTransition``), so that a
        caller writes it in a statement of its own (an approval, with its grant and balance
        rows); then :meth:`settle_move`. ``None``: use :meth:`transition_to`."""
        session = object_session(self)
        if session is None or not self._moves_by_statement(session):
            return None
        current = Status(self.status)
        return _move_params(history_row(self.id, current, target, actor=actor, at=at,
                                        reason=reason, reference=self.reference),
                            current, target)

    def settle_move(self, target: Status, at: dt.datetime, moved: bool) -> None:
        """After the compare-and-set UPDATE to ``target`` (``moved``: it matched its one row):
        keep this object in step, or raise ``ConcurrentChange`` when another transaction
        moved the application first."""
        if not moved:
            session = object_session(self)
            assert session is not None
            table = Application.__table__
            found = session.execute(select(table.c.status).where(table.c.id == self.id)).scalar()
            raise ConcurrentChange(lost_race(self.reference, Status(self.status), found))
        set_committed_value(self, "status", target)
        set_committed_value(self, "updated_at", at)


def _move_params(row: dict[str, Any], current: Status, target: Status) -> dict[str, Any]:
    """``MOVE_CTES``'s parameters from a history row (:func:`history_row`)."""
    return {**row, "from_status": current.value, "to_status": Status(target).value}

# PostgreSQL: an application's compare-and-set move and its history row, as data-modifying
# CTEs (parameters: _move_params); ``moved_application`` has one row if it moved.
MOVE_CTES = """moved_application AS (
    UPDATE applications SET status = CAST(:to_status AS varchar), updated_at = :at
    WHERE id = :application_id AND status = CAST(:from_status AS varchar)
    RETURNING id
), application_history AS (
    INSERT INTO status_changes (application_id, from_status, to_status, actor, reason, at)
    SELECT id, CAST(:from_status AS varchar), CAST(:to_status AS varchar),
        CAST(:actor AS varchar), CAST(:reason AS text), :at
    FROM moved_application
    RETURNING application_id
)"""
MOVE_BINDS = (bindparam("at", type_=UTCDateTime()), bindparam("application_id", type_=Integer()))
MOVE_WITH_HISTORY = text(f"WITH {MOVE_CTES}\nSELECT application_id FROM application_history")\
    .bindparams(*MOVE_BINDS)


class StatusChange(Base):
    """One line of the immutable history: who, when, from, to, why. Database triggers (see the
    first migration) refuse UPDATE and DELETE on this table."""

    __tablename__ = "status_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    from_status: Mapped[Status | None] = mapped_column(status_type("from_status"))
    to_status: Mapped[Status] = mapped_column(status_type("to_status"))
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    application: Mapped[Application] = relationship(back_populates="history")


class EligibilityEvaluation(Base):
    """One evaluation of the rule set: per-rule results kept together as a JSON list of
    ``{rule, passed, reason}`` (one row per evaluation rather than ten keeps intake fast)."""

    __tablename__ = "eligibility_evaluations"

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    ruleset: Mapped[str] = mapped_column(String(20))
    policy_digest: Mapped[str] = mapped_column(String(20))
    eligible: Mapped[bool] = mapped_column(Boolean)
    results: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    evaluated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(200))

    application: Mapped[Application] = relationship(back_populates="evaluations")

    @property
    def failing(self) -> list[dict[str, Any]]:
        return [r for r in self.results if not r["passed"]]


def move_many(session: Session, reasons: dict[int, str], current: Status, target: Status, *,
              actor: str, at: dt.datetime) -> None:
    """Move the applications ``reasons`` names (id -> reason) from ``current`` to ``target``
    at once: the moves checked against the lifecycle, one compare-and-set UPDATE whose count is
    checked (one that moved meanwhile raises ``ConcurrentChange``, so the caller's transaction
    writes nothing) and their history rows through :func:`history_row`, the one writer. The
    bulk counterpart of :meth:`Application.transition_to` (assignment, payment batches)."""
    rows = [history_row(app_id, current, target, actor=actor, at=at, reason=reason)
            for app_id, reason in reasons.items()]
    if not rows:
        return
    table = Application.__table__
    moved = rows_matched(session.execute(
        update(table).where(table.c.id.in_(list(reasons)), table.c.status == current)
        .values(status=target, updated_at=at)))
    if moved != len(reasons):
        raise ConcurrentChange(f"statut changé entre-temps : {len(reasons) - moved} dossier(s) "
                               f"n'étaient plus « {current} » ; rien n'a été modifié")
    write_history(session, rows)
