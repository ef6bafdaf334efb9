"""The envelope ledger (README « For the finance officer »; docs/architecture.md): approvals,
payments, releases, top-ups and corrections, the money movements. The reports that read it
are in ``finance.py``, the invariant check in ``audit.py``.

Every operation starts by locking the fund's total balance row (``BEGIN IMMEDIATE`` already
serialises writers on SQLite; on PostgreSQL a ``SELECT … FOR UPDATE``), then reads what it
checks, then moves money with conditional UPDATEs (``WHERE envelope - committed - disbursed >=
amount``) whose RETURNING values are the running balances written into the entry. So entries
are totally ordered, each carries the balances after it, and an approval that does not fit
changes nothing, with many deciders and payers at once."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import literal, select, update
from sqlalchemy.orm import Session, selectinload

from models import (
    Application,
    Balance,
    DomainError,
    EntryKind,
    Fund,
    Grant,
    LedgerDay,
    LedgerEntry,
    NotFound,
    Status,
    Tranche,
)
from models.base import Money
from models.dialect import dialect_insert, is_postgresql
from models.ledger import TOTAL
from models.lifecycle import check_transition
from models.lookup import application_by_reference
from notifications import payloads
from notifications.outbox import enqueue, message
from odd17.settings import get_fund_config, get_settings
from rules.money import as_str, eur
from rules.tranches import DateOutOfRange, TranchePlan, due_date, split

if TYPE_CHECKING:
    from models.dialect import DialectInsert

ZERO = Decimal("0.00")


class EnvelopeExceeded(DomainError):
    """The approval does not fit in what is available: nothing was changed."""


@dataclass(slots=True)
class Moved:
    """Balances after a ledger write, and whether the envelope alert was just raised."""

    envelope: Decimal
    committed: Decimal
    disbursed: Decimal
    alert_raised: bool = False

    @property
    def available(self) -> Decimal:
        return self.envelope - self.committed - self.disbursed


@dataclass(slots=True)
class Result:
    reference: str
    recorded: bool            # False: the idempotency key was already used, nothing new
    amount: Decimal
    moved: Moved | None = None
    message: str = ""
    entry: int | None = None  # the ledger entry written (or found, when not recorded)


# --- low-level ---------------------------------------------------------------------------

def fund_id(session: Session) -> int:
    found = session.scalar(select(Fund.id).order_by(Fund.id).limit(1))
    if found is None:
        raise NotFound("aucun fonds configuré : lancez « odd17 init »")
    return found


def _lock_total(session: Session, fund: int) -> Balance:
    query = select(Balance).where(Balance.fund_id == fund, Balance.dimension == TOTAL)
    if is_postgresql(session):
        query = query.with_for_update()
    total = session.scalars(query.execution_options(populate_existing=True)).first()
    if total is None:
        raise NotFound("l'enveloppe n'est pas ouverte : lancez « odd17 init »")
    return total


def _move(
    session: Session,
    fund: int,
    *,
    envelope: Decimal = ZERO,
    committed: Decimal = ZERO,
    disbursed: Decimal = ZERO,
    grants: int = 0,
    need_available: Decimal | None = None,
    need_committed: Decimal | None = None,
    alert_threshold: Decimal,
) -> Moved | None:
    """The conditional UPDATE of the total row; ``None`` when its condition does not hold."""
    b = Balance.__table__.c
    stmt = (
        update(Balance.__table__)
        .where(b.fund_id == fund, b.dimension == TOTAL)
        .values(envelope=b.envelope + _cents(envelope), committed=b.committed + _cents(committed),
                disbursed=b.disbursed + _cents(disbursed), grants=b.grants + grants)
        .returning(b.envelope, b.committed, b.disbursed, b.alert)
    )
    if need_available is not None:
        stmt = stmt.where(b.envelope - b.committed - b.disbursed >= _cents(need_available))
    if need_committed is not None:
        stmt = stmt.where(b.committed >= _cents(need_committed))
    row = session.execute(stmt).first()
    if row is None:
        return None
    moved = Moved(row.envelope, row.committed, row.disbursed)
    below = moved.available < moved.envelope * alert_threshold
    if below != row.alert:  # crossing: raised once when going under, reset when back above
        session.execute(update(Balance.__table__)
                        .where(b.fund_id == fund, b.dimension == TOTAL).values(alert=below))
        moved.alert_raised = below
    return moved


def _cents(amount: Decimal) -> Any:
    """An amount bound explicitly as Money (integer cents). Arithmetic on Money columns loses
    the column type, and a bare Decimal would then be compared, in euros, with cents."""
    return literal(amount, Money())


def _upsert(session: Session) -> Callable[[Any], DialectInsert]:
    return partial(dialect_insert, session)


def _record(
    session: Session, fund: int, kind: EntryKind, amount: Decimal, key: str, moved: Moved, *,
    actor: str, now: dt.datetime, note: str, grant: Grant | None = None,
    tranche: Tranche | None = None, committed: Decimal = ZERO, disbursed: Decimal = ZERO,
    grants: int = 0, corrects: int | None = None,
) -> LedgerEntry:
    """Append the entry, then bump the objective and region balances and the day's row."""
    entry = LedgerEntry(
        fund_id=fund, kind=kind, amount=amount, idempotency_key=key, at=now, actor=actor,
        note=note, grant_id=grant.id if grant else None,
        tranche_id=tranche.id if tranche else None, envelope_after=moved.envelope,
        committed_after=moved.committed, disbursed_after=moved.disbursed, corrects_id=corrects,
    )
    session.add(entry)
    insert = _upsert(session)
    if grant is not None:
        _bump_dimensions(session, fund, grant, committed=committed, disbursed=disbursed,
                         grants=grants)
    if moved.alert_raised:
        enqueue(session, [message(payloads.EnvelopeAlert.from_balances(
            envelope=moved.envelope, committed=moved.committed, disbursed=moved.disbursed,
            threshold=get_fund_config().disbursement.alert_threshold, at=now),
            get_settings().finance_email, key=f"envelope_alert:{key}", now=now)])
    day = insert(LedgerDay.__table__).values(
        fund_id=fund, day=now.date(), envelope=moved.envelope, committed=moved.committed,
        disbursed=moved.disbursed)
    session.execute(day.on_conflict_do_update(
        index_elements=["fund_id", "day"],
        set_={"envelope": day.excluded.envelope, "committed": day.excluded.committed,
              "disbursed": day.excluded.disbursed},
    ))
    session.flush()
    return entry


def _bump_dimensions(session: Session, fund: int, grant: Grant, *, committed: Decimal = ZERO,
                     disbursed: Decimal = ZERO, grants: int = 0) -> None:
    """Add the deltas to the grant's objective and region balances. The rows are created
    first (with zeros), then updated: an upsert carrying negative deltas would trip the
    non-negative CHECK on its proposed row before the conflict is resolved (SQLite)."""
    table = Balance.__table__
    keys = (("objective", grant.objective), ("region", grant.region))
    session.execute(_upsert(session)(table).values([
        {"fund_id": fund, "dimension": dimension, "key": key, "envelope": ZERO,
         "committed": ZERO, "disbursed": ZERO, "grants": 0, "alert": False}
        for dimension, key in keys
    ]).on_conflict_do_nothing())
    for dimension, key in keys:
        session.execute(update(table).where(
            table.c.fund_id == fund, table.c.dimension == dimension, table.c.key == key,
        ).values(committed=table.c.committed + _cents(committed),
                 disbursed=table.c.disbursed + _cents(disbursed), grants=table.c.grants + grants))


def _entry(session: Session, key: str) -> LedgerEntry | None:
    return session.scalars(select(LedgerEntry).where(LedgerEntry.idempotency_key == key)).first()


def _application(session: Session, reference: str) -> Application:
    return application_by_reference(session, reference, fresh=True)


def _grant(session: Session, app: Application) -> Grant:
    grant = session.scalars(
        select(Grant).where(Grant.application_id == app.id)
        .options(selectinload(Grant.tranches)).execution_options(populate_existing=True)
    ).first()
    if grant is None:
        raise NotFound(f"{app.reference} : aucune subvention attribuée à ce dossier "
                       f"(statut « {app.status} »)")
    return grant


# --- operations --------------------------------------------------------------------------

def open_envelope(session: Session, amount: Decimal, *, actor: str, now: dt.datetime) -> None:
    """Create the fund's balance row and record the initial envelope as a top-up. Idempotent."""
    fund = fund_id(session)
    exists = session.scalar(select(Balance.id).where(Balance.fund_id == fund,
                                                     Balance.dimension == TOTAL))
    if exists is None:
        session.add(Balance(fund_id=fund, dimension=TOTAL, key="", envelope=ZERO,
                            committed=ZERO, disbursed=ZERO, grants=0, alert=False))
        session.flush()
    topup(session, amount, reason="enveloppe initiale du fonds", key="topup:initial",
          actor=actor, now=now, alert_threshold=Decimal(0))


def topup(session: Session, amount: Decimal, *, reason: str, key: str, actor: str,
          now: dt.datetime, alert_threshold: Decimal,
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
    fund = fund_id(session)
    _lock_total(session, fund)
    previous = _entry(session, key)
    if previous is not None:
        return Result("", False, previous.amount, message="abondement déjà enregistré",
                      entry=previous.id)
    moved = _move(session, fund, envelope=amount, alert_threshold=alert_threshold)
    assert moved is not None
    entry = _record(session, fund, EntryKind.topup, amount, key, moved, actor=actor, now=now,
                    note=reason)
    return Result("", True, amount, moved, entry=entry.id)


def correct_topup(session: Session, entry_id: int, *, reason: str, actor: str,
                  now: dt.datetime, alert_threshold: Decimal) -> Result:
    """Reverse a top-up entered by mistake with a new ``correction`` entry (the ledger is
    append-only): the envelope goes down by its amount. Refused when the top-up was already
    corrected, or when what is available cannot bear it."""
    reason = reason.strip()
    if not reason:
        raise DomainError("une correction doit être motivée (--motif)")
    fund = fund_id(session)
    _lock_total(session, fund)
    target = session.get(LedgerEntry, entry_id)
    if target is None or target.fund_id != fund:
        raise NotFound(f"aucune écriture n°{entry_id} au grand livre")
    if target.kind != EntryKind.topup:
        raise DomainError(f"l'écriture n°{entry_id} est de type « {target.kind} » : seul un "
                          "abondement (topup) peut être corrigé")
    done = session.scalars(select(LedgerEntry).where(LedgerEntry.corrects_id == entry_id)).first()
    if done is not None:
        raise DomainError(f"l'abondement n°{entry_id} a déjà été corrigé (écriture n°{done.id} "
                          f"du {done.at.date().isoformat()}) ; rien n'a été modifié")
    amount = target.amount
    moved = _move(session, fund, envelope=-amount, need_available=amount,
                  alert_threshold=alert_threshold)
    if moved is None:
        total = _lock_total(session, fund)
        raise DomainError(f"corriger l'abondement n°{entry_id} ({eur(amount)}) rendrait le "
                          f"disponible négatif (disponible {eur(total.available)}) ; rien n'a "
                          "été modifié")
    entry = _record(session, fund, EntryKind.correction, amount, f"correction:{entry_id}",
                    moved, actor=actor, now=now, corrects=entry_id,
                    note=f"correction de l'abondement n°{entry_id} : {reason}")
    return Result("", True, amount, moved, entry=entry.id)


def approve(
    session: Session, reference: str, amount: Decimal, *, plan: TranchePlan, actor: str,
    now: dt.datetime, alert_threshold: Decimal, key: str | None = None, reason: str = "",
) -> Result:
    """Reserve ``amount`` for an application in committee, create its grant and tranches and
    move it to ``approved``; all or nothing. A retried approval (same key) commits once."""
    fund = fund_id(session)
    _lock_total(session, fund)
    app = _application(session, reference)
    key = key or f"commit:{app.reference}"
    if _entry(session, key) is not None:
        return Result(app.reference, False, amount, message="accord déjà enregistré")
    if amount <= 0:
        raise DomainError(f"{app.reference} : le montant accordé doit être positif")
    if amount > app.requested_amount:
        raise DomainError(f"{app.reference} : le montant accordé ({eur(amount)}) dépasse le "
                          f"montant demandé ({eur(app.requested_amount)})")
    check_transition(app.status, Status.approved, app.reference)
    due = _due_dates(app, plan, now)
    moved = _move(session, fund, committed=amount, grants=1, need_available=amount,
                  alert_threshold=alert_threshold)
    if moved is None:
        total = _lock_total(session, fund)
        raise EnvelopeExceeded(
            f"{app.reference} : l'enveloppe disponible ({eur(total.available)}) ne permet pas "
            f"d'engager {eur(amount)} ; rien n'a été modifié")
    grant = Grant(application_id=app.id, awarded=amount, disbursed=ZERO, released=ZERO,
                  objective=app.primary_objective or "", region=app.region, approved_at=now)
    session.add(grant)
    session.flush()
    for number, (spec, part, due_on) in enumerate(
        zip(plan.tranches, split(amount, [t.share for t in plan.tranches]), due, strict=True),
        start=1,
    ):
        session.add(Tranche(grant_id=grant.id, number=number, label=spec.label, amount=part,
                            due_on=due_on))
    _record(session, fund, EntryKind.commit, amount, key, moved, actor=actor, now=now,
            note=reason or f"accord {app.reference}", grant=grant, committed=amount, grants=1)
    app.transition_to(Status.approved, actor=actor, at=now,
                      reason=reason or f"décision du comité : accord de {eur(amount)}")
    return Result(app.reference, True, amount, moved)


def _due_dates(app: Application, plan: TranchePlan, now: dt.datetime) -> list[dt.date]:
    """The tranche due dates, or a DomainError naming the dates when the calendar cannot
    hold them (a project starting or ending after year 9999)."""
    document = app.document
    try:
        start = dt.date.fromisoformat(str(document["start_date"]))
        months = int(document["duration_months"])
        return [due_date(spec.due, signed_on=now.date(), start=start, months=months)
                for spec in plan.tranches]
    except (KeyError, TypeError, ValueError) as exc:
        why = str(exc) if isinstance(exc, DateOutOfRange) else "date de début ou durée illisible"
        raise DomainError(f"{app.reference} : échéances des tranches incalculables (début "
                          f"{document.get('start_date')!s}, durée "
                          f"{document.get('duration_months')!s} mois) : {why} ; rien n'a été "
                          "modifié") from exc


def tranche_left(tranche: Tranche) -> Decimal:
    """What is still to pay on a tranche (partial payments leave it due for the rest)."""
    return tranche.amount - (tranche.paid_amount or ZERO)


def payment_window(grant: Grant, now: dt.datetime) -> tuple[dt.date, dt.date]:
    """The dates a payment may bear: from the approval day (the signature tranche's due date)
    to today, today read both in UTC and in the fund's zone (the later of the two)."""
    try:
        local = now.astimezone(ZoneInfo(get_settings().timezone)).date()
    except (ValueError, ZoneInfoNotFoundError):
        local = now.date()
    return grant.approved_at.date(), max(now.date(), local)


def _check_payment_date(reference: str, grant: Grant, paid_on: dt.date,
                        now: dt.datetime) -> None:
    first, last = payment_window(grant, now)
    if not first <= paid_on <= last:
        raise DomainError(f"{reference} : date de paiement {paid_on.isoformat()} hors de la "
                          f"période permise, du {first.isoformat()} (accord) au "
                          f"{last.isoformat()} (aujourd'hui)")


def pay(
    session: Session, reference: str, tranche_number: int, payment_reference: str, *,
    paid_on: dt.date, actor: str, now: dt.datetime, alert_threshold: Decimal,
    amount: Decimal | None = None,
) -> Result:
    """Record a payment on a tranche: by default what is left of it; a smaller amount is a
    partial payment and leaves the tranche due for the rest. The same payment reference twice
    records nothing new; a tranche paid twice or beyond its amount, out of order (an earlier
    one not paid in full), dated before the approval or after today, or on a cancelled or
    closed grant is refused with the reason."""
    payment_reference = payment_reference.strip()
    if not payment_reference:
        raise DomainError("la référence de paiement est obligatoire")
    fund = fund_id(session)
    _lock_total(session, fund)
    app = _application(session, reference)
    key = f"disburse:{payment_reference}"
    previous = _entry(session, key)
    if previous is not None:
        tranche = session.get(Tranche, previous.tranche_id)
        grant = session.get(Grant, previous.grant_id)
        if grant is not None and tranche is not None and grant.application_id == app.id \
                and tranche.number == tranche_number:
            return Result(app.reference, False, previous.amount,
                          message=f"paiement {payment_reference} déjà enregistré")
        raise DomainError(f"la référence de paiement « {payment_reference} » est déjà "
                          f"utilisée par un autre versement")
    grant = _grant(session, app)
    if app.status not in (Status.approved, Status.active):
        raise DomainError(f"{app.reference} : subvention au statut « {app.status} », aucun "
                          "versement n'est possible")
    _check_payment_date(app.reference, grant, paid_on, now)
    by_number = {t.number: t for t in grant.tranches}
    tranche = by_number.get(tranche_number)
    if tranche is None:
        raise DomainError(f"{app.reference} : pas de tranche n°{tranche_number} (tranches 1 à "
                          f"{len(by_number)})")
    if tranche.paid_on is not None:
        raise DomainError(f"{app.reference} : la tranche n°{tranche_number} a déjà été versée "
                          f"le {tranche.paid_on.isoformat()} (référence "
                          f"{tranche.payment_reference})")
    unpaid_before = [t for n, t in sorted(by_number.items())
                     if n < tranche_number and tranche_left(t) > 0]
    if unpaid_before:
        first = unpaid_before[0]
        raise DomainError(f"{app.reference} : la tranche n°{first.number} doit être versée "
                          f"avant la tranche n°{tranche_number} (reste "
                          f"{eur(tranche_left(first))} à verser)")
    left = tranche_left(tranche)
    if left == 0:  # a tranche of 0,00 € (a tiny award split in shares)
        raise DomainError(f"{app.reference} : rien à verser sur la tranche n°{tranche_number} "
                          f"({eur(tranche.amount)})")
    amount = left if amount is None else amount
    if amount <= 0:
        raise DomainError(f"{app.reference} : le montant versé doit être positif")
    if amount > left:
        raise DomainError(f"{app.reference} : {eur(amount)} dépasse ce qui reste à verser sur "
                          f"la tranche n°{tranche_number} ({eur(left)} sur "
                          f"{eur(tranche.amount)}) ; rien n'a été enregistré")
    if amount > grant.outstanding:  # pragma: no cover - tranches sum to the award
        raise DomainError(f"{app.reference} : {eur(amount)} dépasse ce qui reste à verser sur "
                          f"l'attribution ({eur(grant.outstanding)} sur {eur(grant.awarded)})")
    moved = _move(session, fund, committed=-amount, disbursed=amount, need_committed=amount,
                  alert_threshold=alert_threshold)
    if moved is None:  # pragma: no cover - impossible while the per-grant invariant holds
        raise DomainError("engagement insuffisant pour ce versement ; lancez odd17 finance --check")
    grant.disbursed += amount
    tranche.paid_amount = (tranche.paid_amount or ZERO) + amount
    tranche.payment_reference = payment_reference  # the latest payment on the tranche
    if tranche_left(tranche) == 0:  # marked paid only once paid in full
        tranche.paid_on = paid_on
    session.flush()
    partial = "" if tranche.paid_on else f", partiel : reste {as_str(tranche_left(tranche))}"
    _record(session, fund, EntryKind.disburse, amount, key, moved, actor=actor, now=now,
            note=f"{app.reference} tranche {tranche_number} ({tranche.label}), versement du "
                 f"{paid_on.isoformat()}{partial}", grant=grant,
            tranche=tranche, committed=-amount, disbursed=amount)
    if app.status == Status.approved:
        app.transition_to(Status.active, actor=actor, at=now,
                          reason=f"premier versement ({payment_reference})")
    enqueue(session, [message(payloads.TranchePaid.from_payment(
        app, grant, tranche, amount=amount, paid_on=paid_on,
        payment_reference=payment_reference), app.contact_email,
        key=f"tranche_paid:{payment_reference}", now=now, reference=app.reference)])
    return Result(app.reference, True, amount, moved)


def end_grant(
    session: Session, reference: str, *, cancel: bool, reason: str, actor: str,
    now: dt.datetime, alert_threshold: Decimal,
) -> Result:
    """Cancel (approved or active) or close (active) a grant; what is still committed is
    released to the envelope."""
    if cancel and not reason.strip():
        raise DomainError("une annulation doit être motivée (--motif)")
    fund = fund_id(session)
    _lock_total(session, fund)
    app = _application(session, reference)
    grant = _grant(session, app)
    target = Status.cancelled if cancel else Status.closed
    check_transition(app.status, target, app.reference)
    left = grant.outstanding
    moved = None
    if left > 0:
        moved = _move(session, fund, committed=-left, grants=-1 if cancel else 0,
                      need_committed=left, alert_threshold=alert_threshold)
        assert moved is not None
        grant.released += left
        session.flush()
        _record(session, fund, EntryKind.release, left, f"release:{app.reference}", moved,
                actor=actor, now=now, note=reason or f"clôture {app.reference}", grant=grant,
                committed=-left, grants=-1 if cancel else 0)
    elif cancel:  # nothing left to release, but the grant no longer counts
        _move(session, fund, grants=-1, alert_threshold=alert_threshold)
        _bump_dimensions(session, fund, grant, grants=-1)
    grant.ended_at = now
    app.transition_to(target, actor=actor, at=now,
                      reason=reason or ("subvention annulée" if cancel else "projet clos"))
    return Result(app.reference, left > 0, left, moved)


def record_topup(session: Session, amount: Decimal, *, reason: str, key: str | None = None,
                 actor: str, now: dt.datetime, alert_threshold: Decimal,
                 max_amount: Decimal | None = None) -> Result:
    """A board top-up as a user gives it (CLI ``topup``, the web): without an explicit key,
    the same amount for the same decision (``reason``, case and outer spaces aside) is one
    top-up, so a command run twice records nothing new."""
    return topup(session, amount, reason=reason,
                 key=key or f"topup:{as_str(amount)}:{reason.strip().casefold()}",
                 actor=actor, now=now, alert_threshold=alert_threshold, max_amount=max_amount)
