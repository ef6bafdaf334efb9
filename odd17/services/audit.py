"""The audit (``odd17 finance --check``): ``check`` replays the ledger and verifies every
invariant of models/ledger.py, then the lifecycle checks: what a status change lost to a race
would leave behind, read from the tables alone. Each returns the breaches found, in French
(empty: all hold)."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, and_, func, not_, or_, select
from sqlalchemy.orm import Session, aliased, selectinload

from models import (
    Application,
    Balance,
    EntryKind,
    Grant,
    LedgerEntry,
    Status,
    StatusChange,
    Tranche,
)
from models.ledger import TOTAL
from odd17.services.ledger import ZERO, fund_id
from rules.money import as_str

# Statuses in which an application may hold a grant; a cancelled one may too, once what was
# still committed has been released (the grant is ended, nothing outstanding).
GRANTED = (Status.approved, Status.active, Status.closed)


def grants_on_undecided(session: Session) -> list[str]:
    """A grant (money reserved) on an application that is not approved, active or closed,
    and not a cancellation whose grant was ended and released."""
    rows = session.execute(
        select(Application.reference, Application.status, Grant.awarded, Grant.disbursed,
               Grant.released, Grant.ended_at)
        .join(Grant, Grant.application_id == Application.id)
        .where(Application.status.not_in(GRANTED)).order_by(Application.id)
    ).all()
    breaches = []
    for ref, status, awarded, disbursed, released, ended_at in rows:
        if status == Status.cancelled and ended_at is not None \
                and disbursed + released == awarded:
            continue
        breaches.append(f"{ref} : subvention de {awarded} sur un dossier au statut "
                        f"« {status} » (ni accordé, ni actif, ni clos, ni annulé et libéré)")
    return breaches


def statuses_left_twice(session: Session) -> list[str]:
    """An application whose history leaves one status twice (two decisions, two moves out
    of review…), or whose last history row is not its status. The re-evaluation moves between
    eligible and ineligible may legitimately repeat."""
    sc = StatusChange
    reevaluation = or_(
        and_(sc.from_status == Status.eligible, sc.to_status == Status.ineligible),
        and_(sc.from_status == Status.ineligible, sc.to_status == Status.eligible))
    twice = session.execute(
        select(Application.reference, sc.from_status, func.count())
        .join(Application, Application.id == sc.application_id)
        .where(not_(reevaluation))
        .group_by(Application.id, Application.reference, sc.from_status)
        .having(func.count() > 1).order_by(Application.id)
    ).all()
    breaches = [
        f"{ref} : l'historique quitte {n} fois le statut « {status} »" if status else
        f"{ref} : l'historique crée le dossier {n} fois"
        for ref, status, n in twice
    ]
    last = select(sc.application_id, func.max(sc.id).label("id")) \
        .group_by(sc.application_id).subquery()
    drift = session.execute(
        select(Application.reference, Application.status, sc.to_status)
        .join(last, last.c.application_id == Application.id)
        .join(sc, sc.id == last.c.id)
        .where(Application.status != sc.to_status).order_by(Application.id)
    ).all()
    breaches += [f"{ref} : statut « {status} » mais l'historique finit sur « {to} »"
                 for ref, status, to in drift]
    return breaches


# --- the invariant check -------------------------------------------------------------------

def check(session: Session, *, batch: int = 10_000) -> list[str]:
    """Verify every invariant of the ledger (models/ledger.py) by replaying the ledger alone;
    returns the breaches found, each named (empty: all hold)."""
    breaches: list[str] = []
    fund = fund_id(session)
    env = com = dis = ZERO
    per_grant: dict[int, dict[str, Decimal]] = defaultdict(
        lambda: {"commit": ZERO, "disburse": ZERO, "release": ZERO, "commits": ZERO})
    entries = session.execute(
        select(LedgerEntry.id, LedgerEntry.kind, LedgerEntry.amount, LedgerEntry.grant_id,
               LedgerEntry.envelope_after, LedgerEntry.committed_after,
               LedgerEntry.disbursed_after)
        .where(LedgerEntry.fund_id == fund).order_by(LedgerEntry.id)
        .execution_options(yield_per=batch)
    )
    row: Row[Any]
    for row in entries:
        kind, amount, gid = row.kind, row.amount, row.grant_id
        if amount <= 0:
            breaches.append(f"entrée n°{row.id} : montant non positif ({amount})")
        if kind == EntryKind.topup:
            env += amount
        elif kind == EntryKind.correction:
            env -= amount
        elif kind == EntryKind.commit:
            com += amount
        elif kind == EntryKind.disburse:
            com, dis = com - amount, dis + amount
        else:
            com -= amount
        if kind not in (EntryKind.topup, EntryKind.correction):
            if gid is None:
                breaches.append(f"entrée n°{row.id} ({kind}) : sans subvention")
            else:
                g = per_grant[gid]
                g[kind.value] += amount
                g["commits"] += kind == EntryKind.commit
        if com < 0 or dis < 0 or env - com - dis < 0:
            breaches.append(f"entrée n°{row.id} : disponible négatif ou engagement négatif "
                            f"(enveloppe {env}, engagé {com}, versé {dis})")
        if (row.envelope_after, row.committed_after, row.disbursed_after) != (env, com, dis):
            breaches.append(f"entrée n°{row.id} : soldes enregistrés ({row.envelope_after}, "
                            f"{row.committed_after}, {row.disbursed_after}) différents des "
                            f"soldes recalculés ({env}, {com}, {dis})")
    total = session.scalars(select(Balance).where(Balance.fund_id == fund,
                                                  Balance.dimension == TOTAL)).first()
    if total is None or (total.envelope, total.committed, total.disbursed) != (env, com, dis):
        got = (total.envelope, total.committed, total.disbursed) if total else None
        breaches.append(f"solde du fonds {got} différent du grand livre ({env}, {com}, {dis})")
    grants = {g.id: g for g in session.scalars(
        select(Grant).options(selectinload(Grant.tranches)))}
    for gid, g in per_grant.items():
        grant = grants.get(gid)
        if grant is None:
            breaches.append(f"subvention n°{gid} : citée par le grand livre mais absente")
            continue
        ref = grant.application.reference
        if g["commits"] != 1 or g["commit"] != grant.awarded:
            breaches.append(f"{ref} : engagé au grand livre {g['commit']} en {g['commits']} "
                            f"écriture(s), attribué {grant.awarded}")
        if g["disburse"] > g["commit"]:
            breaches.append(f"{ref} : versé ({g['disburse']}) supérieur à l'attribué "
                            f"({g['commit']})")
        if g["disburse"] + g["release"] > g["commit"]:
            breaches.append(f"{ref} : versé + libéré supérieur à l'attribué")
        if (grant.disbursed, grant.released) != (g["disburse"], g["release"]):
            breaches.append(f"{ref} : versé/libéré de la subvention ({grant.disbursed}, "
                            f"{grant.released}) différents du grand livre ({g['disburse']}, "
                            f"{g['release']})")
    for grant in grants.values():
        ref = grant.application.reference
        if grant.id not in per_grant:
            breaches.append(f"{ref} : subvention sans écriture d'engagement")
        if sum((t.amount for t in grant.tranches), ZERO) != grant.awarded:
            breaches.append(f"{ref} : la somme des tranches ne fait pas le montant attribué")
        paid = sum((t.paid_amount or ZERO for t in grant.tranches), ZERO)
        if paid != grant.disbursed:
            breaches.append(f"{ref} : tranches payées ({paid}) différentes du versé "
                            f"({grant.disbursed})")
    breaches.extend(_check_dimensions(session, fund, grants.values()))
    breaches.extend(_check_tranches(session, fund, grants.values()))
    breaches.extend(_check_corrections(session, fund))
    breaches.extend(grants_on_undecided(session))
    breaches.extend(statuses_left_twice(session))
    return breaches


def _check_corrections(session: Session, fund: int) -> list[str]:
    """Each correction reverses one top-up, by exactly its amount."""
    target = aliased(LedgerEntry)
    rows = session.execute(
        select(LedgerEntry.id, LedgerEntry.amount, target.kind, target.amount)
        .outerjoin(target, target.id == LedgerEntry.corrects_id)
        .where(LedgerEntry.fund_id == fund, LedgerEntry.kind == EntryKind.correction)).all()
    return [f"entrée n°{entry} : correction qui ne renverse pas un abondement du même montant "
            f"({kind or 'aucune écriture'}, {as_str(amount)} au lieu de "
            f"{as_str(target_amount) if target_amount is not None else '—'})"
            for entry, amount, kind, target_amount in rows
            if kind != EntryKind.topup or amount != target_amount]


def _check_tranches(session: Session, fund: int, grants: Any) -> list[str]:
    """Tranches and payments agree: each tranche's paid amount is the sum of the ledger's
    payments on it and at most its amount; it is marked paid exactly when paid in full; no
    tranche is paid while an earlier one is not paid in full."""
    ledger_paid = dict(session.execute(
        select(LedgerEntry.tranche_id, func.sum(LedgerEntry.amount))
        .where(LedgerEntry.fund_id == fund, LedgerEntry.kind == EntryKind.disburse)
        .group_by(LedgerEntry.tranche_id)).tuples().all())
    breaches: list[str] = []
    for grant in grants:
        ref = grant.application.reference
        open_before: Tranche | None = None
        for t in grant.tranches:
            paid = t.paid_amount or ZERO
            name = f"{ref} tranche n°{t.number}"
            if paid != (ledger_paid.get(t.id) or ZERO):
                breaches.append(f"{name} : payé {as_str(paid)} mais le grand livre y enregistre "
                                f"{as_str(ledger_paid.get(t.id) or ZERO)}")
            if paid < 0 or paid > t.amount:
                breaches.append(f"{name} : payé {as_str(paid)} hors de son montant "
                                f"({as_str(t.amount)})")
            if (t.paid_on is not None) != (t.paid_amount is not None and paid == t.amount):
                breaches.append(f"{name} : marquée {'versée' if t.paid_on else 'due'} mais "
                                f"payée {as_str(paid)} sur {as_str(t.amount)}")
            if paid > 0 and open_before is not None:
                breaches.append(f"{name} : payée alors que la tranche n°{open_before.number} "
                                "ne l'est pas entièrement")
            if open_before is None and paid < t.amount:
                open_before = t
    return breaches


def _check_dimensions(session: Session, fund: int, grants: Any) -> list[str]:
    expected: dict[tuple[str, str], list[Any]] = defaultdict(lambda: [ZERO, ZERO, 0])
    for grant in grants:
        live = grant.application.status != Status.cancelled
        for key in (("objective", grant.objective), ("region", grant.region)):
            expected[key][0] += grant.outstanding
            expected[key][1] += grant.disbursed
            expected[key][2] += int(live)
    breaches = []
    rows = session.scalars(select(Balance).where(Balance.fund_id == fund,
                                                 Balance.dimension != TOTAL))
    found = {(r.dimension, r.key): [r.committed, r.disbursed, r.grants] for r in rows}
    for key in set(expected) | set(found):
        if found.get(key, [ZERO, ZERO, 0]) != expected.get(key, [ZERO, ZERO, 0]):
            breaches.append(f"solde par {key[0]} « {key[1]} » {found.get(key)} différent des "
                            f"subventions {expected.get(key)}")
    return breaches
