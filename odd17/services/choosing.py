"""Reviewers chosen by the fund manager (issue 14): who can be chosen for an application and,
for those who cannot, why (in French); then assigning the chosen ones with the same writes as
the automatic assignment (``assignment.write_assignments``: reviews, e-mails, compare-and-set
move to ``in_review``)."""

from __future__ import annotations

from typing import TypedDict

from sqlalchemy import func, select

from models import Application, DomainError, Recusal, Review, Reviewer, Status
from models.lookup import application_by_reference
from odd17.services import assignment
from odd17.uow import UnitOfWork
from rules.review import parties


class Candidate(TypedDict):
    email: str
    name: str
    load: int                  # reviews assigned and not yet scored, in review
    choosable: bool
    reason: str | None         # why not, in French


def _load(uow: UnitOfWork) -> dict[int, int]:
    return dict(uow.session.execute(
        select(Review.reviewer_id, func.count()).join(Application)
        .where(Review.scored_at.is_(None), Application.status == Status.in_review)
        .group_by(Review.reviewer_id)).tuples().all())


def _reasons(uow: UnitOfWork, app: Application, people: list[Reviewer]) -> dict[int, str]:
    """Reviewer id -> why they cannot be chosen: conflicts computed from the document now,
    recusals already recorded, already designated, inactive."""
    session = uow.session
    found = assignment.index(people).find(parties(app.document))
    reasons = {rid: f"conflit d'intérêts : {why}" for rid, why in found.items()}
    for recusal in session.scalars(select(Recusal).where(Recusal.application_id == app.id)):
        reasons.setdefault(recusal.reviewer_id, f"récusé : {recusal.reason}")
    for rid in session.scalars(select(Review.reviewer_id).where(
            Review.application_id == app.id)):
        reasons.setdefault(rid, "déjà désigné pour ce dossier")
    for person in people:
        if not person.active:
            reasons.setdefault(person.id, "évaluateur désactivé")
    return reasons


def _reviewers(uow: UnitOfWork) -> list[Reviewer]:
    return list(uow.session.scalars(select(Reviewer).where(Reviewer.reviews)
                                    .order_by(Reviewer.email)))


def assignable_reviewers(uow: UnitOfWork, reference: str) -> list[Candidate]:
    """Every reviewer (those who review applications), fewest current assignments first, each
    with whether they can be chosen for this application and, if not, why. Reads only."""
    app = application_by_reference(uow.session, reference)
    people = _reviewers(uow)
    reasons, load = _reasons(uow, app, people), _load(uow)
    candidates = [Candidate(email=p.email, name=p.name, load=load.get(p.id, 0),
                            choosable=p.id not in reasons, reason=reasons.get(p.id))
                  for p in people]
    return sorted(candidates, key=lambda c: (not c["choosable"], c["load"], c["email"]))


def assign_chosen(uow: UnitOfWork, reference: str, emails: list[str]) -> list[str]:
    """Assign these reviewers to an eligible application and move it to ``in_review``; refuses
    (writing nothing) a reviewer who cannot be chosen, saying why, and too few reviewers. The
    application row is locked first and moved by compare-and-set. The conflicts found among
    all reviewers are recorded as recusals with the assignment. Returns the emails assigned."""
    session = uow.session
    session.flush()
    app = application_by_reference(session, reference, lock=True)
    if app.status != Status.eligible:
        raise DomainError(f"{app.reference} : dossier au statut « {app.status} » ; on ne "
                          "désigne des évaluateurs que pour un dossier éligible")
    wanted = list(dict.fromkeys(e.strip().lower() for e in emails if e.strip()))
    needed = uow.config.review.reviewers_per_application
    if len(wanted) < needed:
        raise DomainError(f"{app.reference} : {needed} évaluateur(s) à désigner, "
                          f"{len(wanted)} choisi(s)")
    people = _reviewers(uow)
    by_email = {p.email: p for p in people}
    unknown = [e for e in wanted if e not in by_email]
    if unknown:
        raise DomainError(f"{app.reference} : évaluateur(s) inconnu(s) : {', '.join(unknown)}")
    reasons = _reasons(uow, app, people)
    refused = [f"{e} ({reasons[by_email[e].id]})" for e in wanted if by_email[e].id in reasons]
    if refused:
        raise DomainError(f"{app.reference} : ne peut pas être désigné : "
                          f"{' ; '.join(refused)} ; rien n'a été enregistré")
    assignment.conflicted(uow, app, people)  # the conflicts of the others, kept as recusals
    assignment.write_assignments(uow, by_email, [(app, wanted)])
    session.expire(app)  # moved by a Core UPDATE
    return wanted
