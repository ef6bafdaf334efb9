"""The reviewer's workspace (issue 14): their assigned applications with due dates, the scoring
form (each criterion with its weight and description), a review saved and finished later, and
its submission, after which it is final.

A review is due ``review.delay_days`` after its assignment (fund configuration, 21 by
default), as a date in the fund's time zone. With ``review.anonymous`` the lead's identity
(name, SIRET, RNA, e-mail, contact) is left out of what the reviewer is shown. An application
the reviewer is not designated for, or is recused from, is reported as not found (the pages
answer 404 for both)."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction
from typing import Any, Literal, TypedDict

from sqlalchemy import select

from models import Application, DomainError, NotFound, Recusal, Review, Reviewer, Status
from models.lookup import application_by_reference
from odd17.services import scoring
from odd17.uow import UnitOfWork
from rules.labels import objective_label, status_label
from rules.money import as_str
from rules.review import ReviewPolicy, score_text, validate_scores

State = Literal["todo", "draft", "submitted"]
STATE_LABELS: dict[str, str] = {"todo": "à faire", "draft": "brouillon", "submitted": "rendue"}


class AssignedRow(TypedDict):
    reference: str
    title: str
    status: str
    status_label: str
    lead_name: str | None       # None when the fund hides the applicant's identity
    assigned_at: str
    due_on: str                 # ISO date, in the fund's zone
    overdue: bool
    state: State
    state_label: str


class Criterion(TypedDict):
    name: str
    weight: int
    description: str | None
    min: int
    max: int
    value: int | None           # the saved draft's note, or the submitted one


class ReviewForm(TypedDict):
    reference: str
    title: str
    summary: str | None
    objectives: list[str]
    objective_labels: list[str]
    region: str
    requested_amount: str
    total_budget: str
    partners: list[dict[str, Any]]
    lead: dict[str, Any] | None  # None when anonymous
    criteria: list[Criterion]
    comment: str | None
    state: State
    state_label: str
    due_on: str
    saved_at: str | None
    submitted_at: str | None
    weighted_score: str | None


def due_on(uow: UnitOfWork, assigned_at: dt.datetime) -> dt.date:
    local = assigned_at.astimezone(uow.context.zone)
    return local.date() + dt.timedelta(days=uow.config.review.delay_days)


def _state(review: Review) -> State:
    if review.scored_at is not None:
        return "submitted"
    return "draft" if review.draft_saved_at is not None else "todo"


def _reviewer(uow: UnitOfWork, email: str) -> Reviewer:
    reviewer = uow.session.scalars(select(Reviewer).where(
        Reviewer.email == email.strip().lower())).first()
    if reviewer is None:
        raise NotFound(f"aucun évaluateur « {email} »")
    return reviewer


def assigned_to(uow: UnitOfWork, email: str) -> list[AssignedRow]:
    """The reviewer's assigned applications (none they are recused from): those still to do
    first, by due date."""
    session, reviewer = uow.session, _reviewer(uow, email)
    recused = select(Recusal.application_id).where(Recusal.reviewer_id == reviewer.id)
    found = session.execute(select(Review, Application).join(
        Application, Application.id == Review.application_id).where(
        Review.reviewer_id == reviewer.id, Review.application_id.not_in(recused))).all()
    today = uow.today
    hidden = uow.config.review.anonymous
    rows = []
    for review, app in found:
        state, due = _state(review), due_on(uow, review.assigned_at)
        rows.append(AssignedRow(
            reference=app.reference, title=app.title, status=app.status.value,
            status_label=status_label(app.status.value),
            lead_name=None if hidden else app.lead.name,
            assigned_at=review.assigned_at.isoformat(), due_on=due.isoformat(),
            overdue=state != "submitted" and today > due, state=state,
            state_label=STATE_LABELS[state]))
    return sorted(rows, key=lambda r: (r["state"] == "submitted", r["due_on"], r["reference"]))


def _assigned_review(uow: UnitOfWork, reference: str, email: str, *,
                     lock: bool = False) -> tuple[Application, Review]:
    """The application and this reviewer's review of it; NotFound when they are not designated
    or are recused (the same answer for both)."""
    session = uow.session
    reviewer = _reviewer(uow, email)
    app = application_by_reference(session, reference, lock=lock)
    review = session.scalars(select(Review).where(
        Review.application_id == app.id, Review.reviewer_id == reviewer.id)).first()
    recused = session.scalar(select(Recusal.id).where(
        Recusal.application_id == app.id, Recusal.reviewer_id == reviewer.id))
    if review is None or recused is not None:
        raise NotFound(f"aucun dossier de référence « {reference} »")
    return app, review


def review_form(uow: UnitOfWork, reference: str, email: str) -> ReviewForm:
    """What the scoring form shows: the application (anonymised if the fund says so), the
    rubric with the reviewer's notes so far, the comment and the state."""
    app, review = _assigned_review(uow, reference, email)
    policy, doc = uow.config.review, app.document
    notes = (review.scores if review.scored_at is not None else review.draft_scores) or {}
    lead = None if policy.anonymous else {
        "name": app.lead.name, "kind": app.lead.kind, "siret": app.lead.siret,
        "rna": app.lead.rna, "email": app.contact_email,
        "contact_name": doc["lead"].get("contact_name")}
    value = scoring.review_value(review, policy)
    state = _state(review)
    return ReviewForm(
        reference=app.reference, title=app.title, summary=doc.get("summary"),
        objectives=list(doc.get("objectives", [])),
        objective_labels=[objective_label(o) for o in doc.get("objectives", [])],
        region=app.region, requested_amount=as_str(app.requested_amount),
        total_budget=as_str(app.total_budget), partners=list(doc.get("partners", [])),
        lead=lead,
        criteria=[Criterion(name=name, weight=weight, description=policy.descriptions.get(name),
                            min=policy.min_score, max=policy.max_score, value=notes.get(name))
                  for name, weight in policy.weights.items()],
        comment=review.comment if review.scored_at is not None else review.draft_comment,
        state=state, state_label=STATE_LABELS[state],
        due_on=due_on(uow, review.assigned_at).isoformat(),
        saved_at=review.draft_saved_at.isoformat() if review.draft_saved_at else None,
        submitted_at=review.scored_at.isoformat() if review.scored_at else None,
        weighted_score=score_text(value))


def partial_problems(scores: dict[str, Any], policy: ReviewPolicy) -> list[str]:
    """What is wrong with the notes given so far (a criterion not yet noted is no problem)."""
    given = {c: v for c, v in scores.items() if v is not None}
    known = {c: w for c, w in policy.weights.items() if c in given}
    problems = validate_scores({c: v for c, v in given.items() if c in known},
                               policy.model_copy(update={"weights": known}))
    return problems + [f"critère inconnu « {c} » (critères : {', '.join(policy.weights)})"
                       for c in given if c not in policy.weights]


def save_draft(uow: UnitOfWork, reference: str, email: str, scores: dict[str, Any],
               comment: str) -> ReviewForm:
    """Save the notes given so far and the comment, to finish later. Refused once the review
    is submitted, and on an application no longer in review. The application row is locked
    first, as ``scoring.score`` does: a save and a submission are serialised."""
    app, review = _assigned_review(uow, reference, email, lock=True)
    if review.scored_at is not None:
        raise DomainError(f"{app.reference} : l'évaluation est déjà rendue (elle est "
                          "définitive)")
    if app.status != Status.in_review:
        raise DomainError(f"{app.reference} : dossier au statut « {app.status} », il n'est pas "
                          "en évaluation")
    problems = partial_problems(scores, uow.config.review)
    if problems:
        raise DomainError(f"{app.reference} : grille invalide : {'; '.join(problems)}")
    review.draft_scores = {c: v for c, v in scores.items() if v is not None}
    review.draft_comment = comment.strip() or None
    review.draft_saved_at = uow.now
    uow.session.flush()
    return review_form(uow, reference, email)


def submit(uow: UnitOfWork, reference: str, email: str) -> Fraction:
    """Submit the saved draft: every criterion noted and a comment required
    (``scoring.score`` checks them, records the review, final from then on, and moves the
    application to the committee when it was the last one)."""
    app, review = _assigned_review(uow, reference, email)
    if review.scored_at is not None:
        raise DomainError(f"{app.reference} : l'évaluation est déjà rendue (elle est "
                          "définitive)")
    return scoring.score(uow, reference, email, dict(review.draft_scores or {}),
                         review.draft_comment or "")
