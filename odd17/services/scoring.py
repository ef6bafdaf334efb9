"""Scoring (README, « Committee review »): a reviewer's notes, the move to the committee when
every review is in, the exact scores, the ranking and the committee's funding proposal, and the
review part of ``odd17 show``."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import Application, Decision, DomainError, NotFound, Recusal, Review, Reviewer, Status
from models.lookup import application_by_reference
from odd17.services import finance
from odd17.services.assignment import conflicted
from odd17.uow import UnitOfWork
from rules.money import as_str
from rules.review import (
    Proposal,
    ReviewPolicy,
    exact_weighted,
    mean,
    propose,
    score_text,
    validate_scores,
    weighted,
)


def score(uow: UnitOfWork, reference: str, email: str, scores: dict[str, Any],
          comment: str) -> Fraction:
    """Record a reviewer's scores; when every assigned review is in, move to ``committee``.
    Returns the exact weighted score (recorded in thousandths). The application row is locked
    first: two last scores at once are serialised, so exactly one of them sees no review
    pending and moves it."""
    session, policy = uow.session, uow.config.review
    app = application_by_reference(session, reference, lock=True)
    reviewer = session.scalars(select(Reviewer).where(Reviewer.email == email.strip().lower())
                               ).first()
    if reviewer is None:
        raise NotFound(f"aucun évaluateur « {email} »")
    reason = conflicted(uow, app, [reviewer]).get(reviewer.id)
    if reason:
        raise DomainError(f"{app.reference} : {reviewer.email} est en conflit d'intérêts "
                          f"({reason}) et ne peut pas évaluer ce dossier")
    # Read fresh under the application's lock: a caller may hold this review from before it
    # (the portal's submit), and another submission may have landed meanwhile (PostgreSQL).
    review = session.scalars(select(Review).where(Review.application_id == app.id,
                                                  Review.reviewer_id == reviewer.id)
                             .execution_options(populate_existing=True)).first()
    # before the status: a second submission of the last review finds it in committee
    if review is not None and review.scored_at is not None:
        raise DomainError(f"{app.reference} : l'évaluation de {reviewer.email} est déjà rendue "
                          "(elle est définitive)")
    if app.status != Status.in_review:
        raise DomainError(f"{app.reference} : dossier au statut « {app.status} », il n'est pas "
                          "en évaluation")
    if review is None:
        raise DomainError(f"{app.reference} : {reviewer.email} n'est pas désigné pour ce "
                          "dossier")
    problems = validate_scores(scores, policy)
    if problems:
        raise DomainError(f"{app.reference} : grille invalide : {'; '.join(problems)}")
    if not comment.strip():
        raise DomainError(f"{app.reference} : un commentaire est requis avec les notes")
    review.scores, review.comment, review.scored_at = dict(scores), comment.strip(), uow.now
    review.weighted_milli = int(weighted(scores, policy) * 1000)
    review.draft_scores = review.draft_comment = review.draft_saved_at = None  # submitted
    session.flush()
    pending = session.scalar(select(func.count()).select_from(Review).where(
        Review.application_id == app.id, Review.scored_at.is_(None)))
    if pending == 0:
        app.transition_to(Status.committee, actor=uow.actor, at=uow.now,
                          reason="toutes les évaluations sont rendues")
    return exact_weighted(scores, policy)


def advance_reviewed(uow: UnitOfWork) -> list[str]:
    """Move to ``committee`` every application whose assigned reviews are all in (the state a
    run killed between scoring and moving could leave)."""
    waiting = select(Review.application_id).where(Review.scored_at.is_(None))
    apps = uow.session.scalars(select(Application).where(
        Application.status == Status.in_review, Application.id.not_in(waiting),
        Application.id.in_(select(Review.application_id)))
        .order_by(Application.id).with_for_update(of=Application, skip_locked=True)
        .execution_options(populate_existing=True)).all()
    for app in apps:
        app.transition_to(Status.committee, actor=uow.actor, at=uow.now,
                          reason="toutes les évaluations sont rendues")
    return [a.reference for a in apps]


def _exact(scores: dict[str, Any], milli: int, policy: ReviewPolicy) -> Fraction:
    """A review's exact weighted score, recomputed from its notes; the recorded thousandths
    only for notes the current rubric no longer fits."""
    if set(scores) == set(policy.weights):
        return exact_weighted(scores, policy)
    return Fraction(milli, 1000)


def review_value(review: Review, policy: ReviewPolicy) -> Fraction | None:
    if review.scores is None or review.weighted_milli is None:
        return None
    return _exact(review.scores, review.weighted_milli, policy)


def exact_review_scores(reviews: list[dict[str, Any]], policy: ReviewPolicy) -> list[Fraction]:
    """The exact weighted scores of scored reviews as ``review_detail`` gives them."""
    return [_exact(r["scores"], int(Decimal(r["weighted_score"]) * 1000), policy)
            for r in reviews]


def application_score(session: Session, app_id: int, policy: ReviewPolicy) -> Fraction | None:
    """The exact mean of the reviewers' exact weighted scores (rounded only for display)."""
    reviews = session.scalars(select(Review).where(
        Review.application_id == app_id, Review.weighted_milli.is_not(None))).all()
    return mean([v for r in reviews if (v := review_value(r, policy)) is not None])


@dataclass(slots=True)
class Ranking:
    available: Decimal
    items: list[Proposal]
    titles: dict[str, str]


def ranking(uow: UnitOfWork) -> Ranking:
    """The applications before the committee ranked by exact score, and what fits."""
    session, policy = uow.session, uow.config.review
    apps = session.scalars(select(Application).where(Application.status == Status.committee)
                           .order_by(Application.id)).all()
    ranked = [(a.reference, application_score(session, a.id, policy) or Fraction(0),
               a.requested_amount) for a in apps]
    report = finance.finance_report(uow)
    available = Decimal(report["available"])
    return Ranking(available, propose(ranked, available), {a.reference: a.title for a in apps})


def proposal(uow: UnitOfWork) -> dict[str, Any]:
    """The ``--json`` shape of ``committee propose``."""
    result = ranking(uow)
    items = result.items
    return {
        "available": as_str(result.available),
        "proposed_total": as_str(sum((p.amount for p in items if p.funded), Decimal(0))),
        "applications": [{"reference": p.reference, "title": result.titles[p.reference],
                          "score": score_text(p.score), "amount": as_str(p.amount),
                          "proposed": p.funded} for p in items],
    }


def review_detail(session: Session, app: Application, policy: ReviewPolicy) -> dict[str, Any]:
    """The review part of ``odd17 show --json``; ``policy``: the rubric scores are computed
    under."""
    reviews = session.scalars(select(Review).where(Review.application_id == app.id)
                              .order_by(Review.id)).all()
    recusals = session.scalars(select(Recusal).where(Recusal.application_id == app.id)
                               .order_by(Recusal.id)).all()
    decision = session.scalars(select(Decision).where(Decision.application_id == app.id)
                               .order_by(Decision.id.desc()).limit(1)).first()
    score_ = application_score(session, app.id, policy)
    return {
        "reviews": [{"reviewer": r.reviewer.email, "name": r.reviewer.name,
                     "scores": r.scores, "weighted_score": score_text(review_value(r, policy)),
                     "comment": r.comment,
                     "scored_at": r.scored_at.isoformat() if r.scored_at else None}
                    for r in reviews],
        "score": score_text(score_),
        "recusals": [{"reviewer": r.reviewer.email, "reason": r.reason} for r in recusals],
        "decision": None if decision is None else {
            "outcome": decision.outcome,
            "amount": as_str(decision.amount) if decision.amount else None,
            "motif": decision.motif, "present": decision.present,
            "recused": decision.recused,
            "recorded_at": decision.recorded_at.isoformat(),
            "applied_at": decision.applied_at.isoformat() if decision.applied_at else None,
            "error": decision.error},
    }
