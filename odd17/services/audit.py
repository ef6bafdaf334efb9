"""Lifecycle checks of the audit (``odd17 finance --check``): what a status change lost to a
race would leave behind, read from the tables alone. Each returns the breaches found, in
French (empty: all hold)."""

from __future__ import annotations

from sqlalchemy import and_, func, not_, or_, select
from sqlalchemy.orm import Session

from models import Application, Grant, Status, StatusChange

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
