"""The envelope ledger's money movements (README « For the finance officer »;
docs/architecture.md): approvals, payments, releases, top-ups and their corrections. The balance
rows they move are in ``balances.py``, what they read first in ``ledger_reads.py``, the tranche
rules on the models (``Grant.payable``, ``Grant.schedule``); the reports that read the ledger
are in ``finance.py``, the invariant check in ``audit.py``.

Each movement reads and validates everything first, writes the rows of its own grant and
application, then moves the fund's total row by a conditional UPDATE (``WHERE envelope -
committed - disbursed >= amount``), which takes that row's lock for the rest of the
transaction: only the entry carrying the balances after it, the day's and the grant's
objective and region rows and the commit follow (PostgreSQL, an approval: in the same
statement, ``balances.move_and_record``). So entries are totally ordered, each carries the
balances after it, an approval that does not fit changes nothing, and writers queue on the
total row only for a few statements."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import (
    Application,
    Balance,
    ConcurrentChange,
    DomainError,
    EntryKind,
    Grant,
    LedgerEntry,
    NotFound,
    Status,
    Tranche,
)
from models.dialect import is_postgresql
from models.ledger import TOTAL, ZERO, NewGrant, schedule
from models.lifecycle import check_transition
from notifications import payloads
from notifications.outbox import enqueue, message
from odd17.services import ledger_reads as reads
from odd17.services.balances import (
    Moved,
    bump_dimensions,
    fund_id,
    lock_total,
    move,
    move_and_record,
    record_approval,
    record_entry,
)
from odd17.uow import UnitOfWork
from rules.awards import award_refusal
from rules.money import as_str, eur
from rules.tranches import TranchePlan

__all__ = ["ZERO", "EnvelopeExceeded", "Moved", "Result", "Staged", "approve", "commit_approval",
           "correct_topup", "end_grant", "fund_id", "open_envelope", "pay", "record_topup",
           "stage_approval", "topup"]


class EnvelopeExceeded(DomainError):
    """The approval does not fit in what is available: nothing was changed."""


@dataclass(slots=True)
class Result:
    reference: str
    recorded: bool            # False: the idempotency key was already used, nothing new
    amount: Decimal
    moved: Moved | None = None
    message: str = ""
    entry: int | None = None  # the ledger entry written (or found, when not recorded)


def _available(session: Session, fund: int) -> Decimal:
    total = session.scalar(select(Balance).where(Balance.fund_id == fund,
                                                 Balance.dimension == TOTAL)
                           .execution_options(populate_existing=True))
    return total.available if total is not None else ZERO


# --- the envelope: top-ups and their corrections ------------------------------------------

def open_envelope(uow: UnitOfWork, amount: Decimal) -> None:
    """Create the fund's balance row and record the initial envelope as a top-up. Idempotent."""
    session = uow.session
    fund = fund_id(session)
    exists = session.scalar(select(Balance.id).where(Balance.fund_id == fund,
                                                     Balance.dimension == TOTAL))
    if exists is None:
        session.add(Balance(fund_id=fund, dimension=TOTAL, key="", envelope=ZERO,
                            committed=ZERO, disbursed=ZERO, grants=0, alert=False))
        session.flush()
    topup(uow, amount, reason="enveloppe initiale du fonds", key="topup:initial")


def topup(uow: UnitOfWork, amount: Decimal, *, reason: str, key: str,
          max_amount: Decimal | None = None) -> Result:
    """Raise the envelope (a board decision, named in ``reason``); at most ``max_amount`` at
    once (``disbursement.max_topup``). The same key twice records nothing new."""
    reason = reason.strip()
    if not reason:
        raise DomainError("un abondement doit être motivé (--motif : la décision du conseil)")
    if amount <= 0:
        raise DomainError(f"le montant d'un abondement doit être positif, pas {amount}")
    if max_amount is not None and amount > max_amount:
        raise DomainError(f"l'abondement de {eur(amount)} dépasse le plafond d'un abondement "
                          f"({eur(max_amount)}, disbursement.max_topup dans la configuration du "
                          "fonds) ; rien n'a été enregistré")
    fund = fund_id(uow.session)
    lock_total(uow.session, fund)  # the key is checked under the lock: one top-up per key
    previous = reads.entry(uow.session, key)
    if previous is not None:
        return Result("", False, previous.amount, message="abondement déjà enregistré",
                      entry=previous.id)
    done = move_and_record(uow, fund, EntryKind.topup, amount, key, note=reason,
                           envelope=amount)
    assert done is not None
    return Result("", True, amount, done[0], entry=done[1])


def record_topup(uow: UnitOfWork, amount: Decimal, *, reason: str, key: str | None = None,
                 max_amount: Decimal | None = None) -> Result:
    """A board top-up as a user gives it (CLI ``topup``, the web): without an explicit key,
    the same amount for the same decision (``reason``, case and outer spaces aside) is one
    top-up, so a command run twice records nothing new."""
    return topup(uow, amount, reason=reason,
                 key=key or f"topup:{as_str(amount)}:{reason.strip().casefold()}",
                 max_amount=max_amount)


def correct_topup(uow: UnitOfWork, entry_id: int, *, reason: str) -> Result:
    """Reverse a top-up entered by mistake with a new ``correction`` entry (the ledger is
    append-only): the envelope goes down by its amount. Refused when the top-up was already
    corrected, or when what is available cannot bear it."""
    reason = reason.strip()
    if not reason:
        raise DomainError("une correction doit être motivée (--motif)")
    session = uow.session
    fund = fund_id(session)
    lock_total(session, fund)
    target = session.get(LedgerEntry, entry_id)
    if target is None or target.fund_id != fund:
        raise NotFound(f"aucune écriture n°{entry_id} au grand livre")
    if target.kind != EntryKind.topup:
        raise DomainError(f"l'écriture n°{entry_id} est de type « {target.kind} » : seul un "
                          "abondement (topup) peut être corrigé")
    earlier = session.scalars(select(LedgerEntry)
                              .where(LedgerEntry.corrects_id == entry_id)).first()
    if earlier is not None:
        raise DomainError(f"l'abondement n°{entry_id} a déjà été corrigé (écriture n°"
                          f"{earlier.id} du {earlier.at.date().isoformat()}) ; rien n'a été "
                          "modifié")
    amount = target.amount
    done = move_and_record(uow, fund, EntryKind.correction, amount, f"correction:{entry_id}",
                           envelope=-amount, need_available=amount, corrects=entry_id,
                           note=f"correction de l'abondement n°{entry_id} : {reason}")
    if done is None:
        raise DomainError(f"corriger l'abondement n°{entry_id} ({eur(amount)}) rendrait le "
                          f"disponible négatif (disponible {eur(_available(session, fund))}) ; "
                          "rien n'a été modifié")
    return Result("", True, amount, done[0], entry=done[1])


# --- grants: approval, payments, end ------------------------------------------------------

def approve(uow: UnitOfWork, reference: str, amount: Decimal, *, plan: TranchePlan,
            key: str | None = None, reason: str = "") -> Result:
    """Reserve ``amount`` for an application in committee, create its grant and tranches and
    move it to ``approved``; all or nothing. A retried approval (same key) commits once.

    Everything is read and checked first (:func:`stage_approval`); the balance rows are
    moved last (:func:`commit_approval`), so the total row's lock is held for one statement
    on PostgreSQL and the commit. On PostgreSQL an approval is three round trips after BEGIN:
    the application's read, one statement, COMMIT."""
    staged = stage_approval(uow, reads.application(uow.session, reference), amount,
                            plan=plan, key=key, reason=reason)
    return staged if isinstance(staged, Result) else commit_approval(uow, staged)


@dataclass(slots=True)
class Staged:
    """An approval checked and written but for the balance rows, which
    :func:`commit_approval` moves (PostgreSQL: the status move and the grant are written
    with them, see ``move``)."""

    app: Application
    grant: NewGrant
    amount: Decimal
    key: str
    note: str
    # PostgreSQL: the application's move, written with the grant and the balance rows
    # (balances.record_approval) instead of before them; None: both are written already
    move: dict[str, Any] | None = None


def stage_approval(uow: UnitOfWork, app: Application, amount: Decimal, *, plan: TranchePlan,
                   key: str | None = None, reason: str = "") -> Staged | Result:
    """The part of an approval that needs no lock of the balance rows: the checks, the status
    by compare-and-set (a concurrent approval of the same application waits, then finds it
    approved), the grant and its tranches, flushed. ``app`` is read fresh by the caller. A
    Result when the approval was already recorded (nothing new).

    PostgreSQL (the application's history not loaded): the status move, the grant and its
    tranches are only prepared here (``Staged.move``); :func:`commit_approval` writes them
    with the balance rows in one statement, two round trips less."""
    session = uow.session
    key = key or f"commit:{app.reference}"
    # An approval's entry exists only once the application left ``committee`` (same commit)
    if app.status != Status.committee and reads.entry(session, key) is not None:
        return Result(app.reference, False, amount, message="accord déjà enregistré")
    if (refusal := award_refusal(amount, app.requested_amount)) is not None:
        raise DomainError(f"{app.reference} : {refusal}")
    check_transition(app.status, Status.approved, app.reference)
    due = reads.due_dates(app, plan, uow.now)
    why = reason or f"décision du comité : accord de {eur(amount)}"
    grant = NewGrant(app.id, amount, app.primary_objective or "", app.region, uow.now,
                     schedule(amount, plan, due))
    # PostgreSQL: written by commit_approval's one statement instead (two round trips less)
    app_move = app.staged_move(Status.approved, actor=uow.actor, at=uow.now, reason=why)
    if app_move is None:
        try:
            app.transition_to(Status.approved, actor=uow.actor, at=uow.now, reason=why)
        except ConcurrentChange:
            if reads.entry(session, key) is not None:  # the same approval, committed meanwhile
                return Result(app.reference, False, amount, message="accord déjà enregistré")
            raise
        _insert_grant(session, grant)
    session.flush()  # anything else the caller changed, before the balance rows' locks
    return Staged(app, grant, amount, key, reason or f"accord {app.reference}", app_move)


GRANT_COLUMNS = ("application_id", "awarded", "disbursed", "released", "objective", "region",
                 "approved_at")


def _insert_grant(session: Session, grant: NewGrant) -> None:
    """Write a new grant and its tranches with two Core INSERTs (the ORM's flush of them
    costs more CPU than the rest of an approval); its id set, for what the transaction still
    writes (the email, the entry)."""
    grants, tranches = Grant.__table__, Tranche.__table__
    grant.id = session.execute(insert(grants).returning(grants.c.id),
                               {c: getattr(grant, c) for c in GRANT_COLUMNS}).scalar_one()
    session.execute(insert(tranches), [
        {"grant_id": grant.id, **t._asdict()} for t in grant.tranches])


def commit_approval(uow: UnitOfWork, staged: Staged) -> Result:
    """Move the balance rows of a staged approval: the total row by conditional UPDATE, with the
    entry, the day's row and the grant's objective and region rows. Call it last, once
    everything else of the transaction is written (no ORM object left to flush), so that only
    the commit follows; refused with no change when the envelope cannot bear it. With
    ``staged.move`` (PostgreSQL), the application's move, its grant and tranches are written
    by the same statement (``balances.record_approval``): ``ConcurrentChange`` if another
    transaction moved the application since it was read."""
    session, amount, app = uow.session, staged.amount, staged.app
    if staged.move is not None:  # PostgreSQL: the move, the grant and the balances at once
        grant_id, done = record_approval(uow, staged.move, staged.grant, amount, staged.key,
                                         note=staged.note)
        if grant_id is None and reads.entry(session, staged.key) is not None:
            # the same approval, committed meanwhile (this statement wrote nothing)
            return Result(app.reference, False, amount, message="accord déjà enregistré")
        app.settle_move(Status.approved, uow.now, grant_id is not None)  # or raises
        assert grant_id is not None
        staged.grant.id = grant_id
    else:
        done = move_and_record(uow, None, EntryKind.commit, amount, staged.key,
                               note=staged.note, committed=amount, grants=1,
                               need_available=amount, grant_id=staged.grant.id,
                               grant=staged.grant)
    if done is None:
        raise EnvelopeExceeded(
            f"{staged.app.reference} : l'enveloppe disponible "
            f"({eur(_available(session, fund_id(session)))}) ne permet pas d'engager "
            f"{eur(amount)} ; rien n'a été modifié")
    moved, entry = done
    return Result(app.reference, True, amount, moved, entry=entry)


def _locked(session: Session, app: Application) -> tuple[Application, Grant]:
    """The application and its grant with its tranches as they are now, the grant locked
    first (PostgreSQL): two movements on one grant are checked one after the other."""
    if is_postgresql(session):
        session.execute(select(Grant.id).where(Grant.application_id == app.id)
                        .with_for_update())
        app = reads.application(session, app.reference)  # re-read: populate_existing
    return app, reads.grant(session, app)


def previous_payment(session: Session, previous: LedgerEntry, app_id: int, reference: str,
                     tranche_number: int, payment_reference: str) -> Result:
    """A payment reference already used: the same payment again records nothing new; on
    another tranche it is refused."""
    tranche = session.get(Tranche, previous.tranche_id)
    grant = session.get(Grant, previous.grant_id)
    if grant is not None and tranche is not None and grant.application_id == app_id \
            and tranche.number == tranche_number:
        return Result(reference, False, previous.amount,
                      message=f"paiement {payment_reference} déjà enregistré")
    raise DomainError(f"la référence de paiement « {payment_reference} » est déjà "
                      f"utilisée par un autre versement")


def check_payable_grant(uow: UnitOfWork, app_reference: str, status: Status, grant: Grant,
                        paid_on: dt.date) -> None:
    if status not in (Status.approved, Status.active):
        raise DomainError(f"{app_reference} : subvention au statut « {status} », aucun "
                          "versement n'est possible")
    reads.check_payment_date(app_reference, grant, paid_on, uow.now, uow.context.timezone)


def paid_message(uow: UnitOfWork, app: Application, grant: Grant, tranche: Tranche, amount: Decimal,
                 payment_reference: str, paid_on: dt.date) -> dict[str, object]:
    """The ``tranche_paid`` email to the beneficiary."""
    return message(payloads.TranchePaid.from_payment(
        app, grant, tranche, amount=amount, paid_on=paid_on, payment_reference=payment_reference),
        app.contact_email, key=f"tranche_paid:{payment_reference}", now=uow.now,
        reference=app.reference)


def paid_note(reference: str, tranche: Tranche, paid_on: dt.date) -> str:
    partial = "" if tranche.paid_on else f", partiel : reste {as_str(tranche.left)}"
    return (f"{reference} tranche {tranche.number} ({tranche.label}), versement du "
            f"{paid_on.isoformat()}{partial}")


def flush_payments(session: Session, payment_references: list[str]) -> None:
    """Write the tranches paid. The same payment reference recorded at the same moment on
    another grant (whose lock is not ours) trips the UNIQUE payment reference: refused."""
    try:
        session.flush()
    except IntegrityError as exc:
        if "payment_reference" not in str(exc.orig):
            raise
        raise DomainError(f"la référence de paiement « {', '.join(payment_references)} » est "
                          "déjà utilisée par un autre versement") from None


def pay(uow: UnitOfWork, reference: str, tranche_number: int, payment_reference: str, *,
        paid_on: dt.date, amount: Decimal | None = None) -> Result:
    """Record a payment on a tranche: by default what is left of it; a smaller amount is a
    partial payment and leaves the tranche due for the rest. The same payment reference twice
    records nothing new; a tranche paid twice or beyond its amount, out of order (an earlier
    one not paid in full), dated before the approval or after today, or on a cancelled or
    closed grant is refused with the reason (``Grant.payable``). For a bank statement, see
    ``payments.record``: one lock of the total row per batch."""
    payment_reference = payment_reference.strip()
    if not payment_reference:
        raise DomainError("la référence de paiement est obligatoire")
    session = uow.session
    fund = fund_id(session)
    app = reads.application(session, reference)
    key = f"disburse:{payment_reference}"
    app, grant = _locked(session, app)  # then the key: a retry waits for the first, finds it
    previous = reads.entry(session, key)
    if previous is not None:
        return previous_payment(session, previous, app.id, app.reference, tranche_number,
                                payment_reference)
    check_payable_grant(uow, app.reference, Status(app.status), grant, paid_on)
    tranche, amount = grant.payable(app.reference, tranche_number, amount)
    grant.record_payment(tranche, amount, payment_reference, paid_on)
    if app.status == Status.approved:
        app.transition_to(Status.active, actor=uow.actor, at=uow.now,
                          reason=f"premier versement ({payment_reference})")
    enqueue(session, [paid_message(uow, app, grant, tranche, amount, payment_reference,
                                   paid_on)])
    flush_payments(session, [payment_reference])
    done = move_and_record(uow, fund, EntryKind.disburse, amount, key,
                           note=paid_note(app.reference, tranche, paid_on), committed=-amount,
                           disbursed=amount, need_committed=amount, grant_id=grant.id,
                           tranche_id=tranche.id)
    if done is None:  # pragma: no cover - impossible while the per-grant invariant holds
        raise DomainError("engagement insuffisant pour ce versement ; lancez odd17 finance --check")
    bump_dimensions(session, fund, [(grant, -amount, amount, 0)])  # after the total row
    return Result(app.reference, True, amount, done[0], entry=done[1])


def end_grant(uow: UnitOfWork, reference: str, *, cancel: bool, reason: str) -> Result:
    """Cancel (approved or active) or close (active) a grant; what is still committed is
    released to the envelope."""
    if cancel and not reason.strip():
        raise DomainError("une annulation doit être motivée (--motif)")
    session = uow.session
    fund = fund_id(session)
    app = reads.application(session, reference)
    app, grant = _locked(session, app)
    target = Status.cancelled if cancel else Status.closed
    check_transition(app.status, target, app.reference)
    app.transition_to(target, actor=uow.actor, at=uow.now,
                      reason=reason or ("subvention annulée" if cancel else "projet clos"))
    left = grant.outstanding
    grants = -1 if cancel else 0
    grant.released += left
    grant.ended_at = uow.now
    session.flush()
    if left == 0 and grants == 0:  # closing a grant paid in full: no balance moves
        return Result(app.reference, False, left)
    moved = move(uow, fund, committed=-left, grants=grants,
                 need_committed=left if left > 0 else None)
    assert moved is not None
    bump_dimensions(session, fund, [(grant, -left, ZERO, grants)])  # after the total row
    if left == 0:  # nothing left to release, but the grant no longer counts
        return Result(app.reference, False, left)
    record_entry(uow, fund, EntryKind.release, left, f"release:{app.reference}", moved,
                 note=reason or f"clôture {app.reference}", grant_id=grant.id)
    return Result(app.reference, True, left, moved)
