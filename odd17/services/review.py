"""Committee review (README, « Committee review »): reviewers, conflicts, assignment, scoring,
decisions.

Nothing here waits for people: each function does what can be done now, in one transaction,
and returns. Conflicts are computed from the stored document each time they matter
(assignment, scoring, voting) and every one found is recorded as a recusal with its reason."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from stdnum.fr import siren as siren_checker

from models import (
    Application,
    Decision,
    DecisionOutcome,
    DomainError,
    NotFound,
    Recusal,
    Review,
    Reviewer,
    Status,
)
from models.lifecycle import DECIDED
from notifications.outbox import enqueue, message
from odd17.services import finance, ledger, sources
from odd17.settings import get_fund_config
from odd17.uow import Context, UnitOfWork
from rules.awards import award_refusal
from rules.document import Email, explain
from rules.money import as_str, eur
from rules.review import (
    Proposal,
    ReviewPolicy,
    conflicts,
    exact_weighted,
    has_quorum,
    mean,
    parties,
    pick_reviewers,
    propose,
    score_text,
    validate_scores,
    weighted,
)
from rules.tranches import TranchePlan

# --- reviewers ---------------------------------------------------------------------------

class ReviewerIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: str = Field(min_length=1, max_length=200)
    email: Email
    siren: str | None = None
    interests: list[str] = Field(default_factory=list)
    committee: bool = False
    reviews: bool = True

    @field_validator("email")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()

    @field_validator("siren")
    @classmethod
    def _siren(cls, value: str | None) -> str | None:
        if not value:
            return None
        compact = "".join(value.split())
        if not siren_checker.is_valid(compact):
            raise ValueError(f"SIREN invalide : {value}")
        return compact

    @field_validator("interests", mode="before")
    @classmethod
    def _interests(cls, value: Any) -> Any:
        if isinstance(value, str):  # CSV: "123456789; 987654321"
            value = [v for v in value.replace(",", ";").split(";") if v.strip()]
        return value

    @field_validator("interests")
    @classmethod
    def _valid_sirens(cls, values: list[str]) -> list[str]:
        out = []
        for value in values:
            compact = "".join(value.split())[:9]
            if not siren_checker.is_valid(compact):
                raise ValueError(f"intérêt déclaré : SIREN invalide « {value} »")
            out.append(compact)
        return out

    @field_validator("committee", "reviews", mode="before")
    @classmethod
    def _flag(cls, value: Any) -> Any:
        if isinstance(value, str):
            folded = value.strip().casefold()
            if folded in ("oui", "yes", "true", "1", "x"):
                return True
            if folded in ("non", "no", "false", "0", ""):
                return False
        return value


def add_reviewer(session: Session, data: ReviewerIn, now: dt.datetime) -> tuple[Reviewer, bool]:
    """Create or update (by email) a reviewer; returns it and whether it was created."""
    reviewer = session.scalars(select(Reviewer).where(Reviewer.email == data.email)).first()
    created = reviewer is None
    if reviewer is None:
        reviewer = Reviewer(email=data.email, created_at=now, active=True)
        session.add(reviewer)
    reviewer.name, reviewer.siren, reviewer.interests = data.name, data.siren, data.interests
    reviewer.committee, reviewer.reviews = data.committee, data.reviews
    session.flush()
    return reviewer, created


@dataclass(slots=True)
class ImportReport:
    created: int = 0
    updated: int = 0
    refused: list[dict[str, str]] = field(default_factory=list)


def read_reviewers(path: Path) -> list[tuple[str, Any]]:
    """(source, row) per reviewer; a row that cannot be read is (source, its French error
    message). A file that cannot be read at all raises DomainError."""
    try:
        data = sources.read_bytes(path)
        records = (sources.csv_records(path, data) if path.suffix == ".csv"
                   else sources.json_array(path, data))
    except sources.SourceError as exc:
        raise DomainError(str(exc)) from exc
    return [(r.source, r.error if r.error is not None else r.data) for r in records]


def import_reviewers(session: Session, rows: list[tuple[str, Any]],
                     now: dt.datetime) -> ImportReport:
    """Good rows are kept, each bad row is refused with what is wrong (rows are validated
    before anything is written)."""
    report = ImportReport()
    for source, row in rows:
        if isinstance(row, str):  # refused by the reader
            report.refused.append({"source": source, "errors": row})
            continue
        try:
            data = ReviewerIn.model_validate(row)
        except ValidationError as exc:
            report.refused.append({"source": source, "errors": "; ".join(
                f"{e['field']} : {e['message']}" for e in explain(exc))})
            continue
        _, created = add_reviewer(session, data, now)
        if created:
            report.created += 1
        else:
            report.updated += 1
    return report


# --- conflicts ---------------------------------------------------------------------------

def _app(session: Session, reference: str, *, lock: bool = False) -> Application:
    """The application by reference. ``lock``: read it fresh under its row lock (PostgreSQL;
    SQLite's BEGIN IMMEDIATE already serialises writers), so that what is checked stays true
    until this transaction ends."""
    query = select(Application).where(Application.reference == reference.strip().upper())
    if lock:
        query = query.with_for_update(of=Application).execution_options(populate_existing=True)
    app = session.scalars(query).first()
    if app is None:
        raise NotFound(f"aucun dossier de référence « {reference} »")
    return app


def conflicted(session: Session, app: Application, people: list[Reviewer],
               now: dt.datetime) -> dict[int, str]:
    """Reviewer id -> reason, for those conflicted on ``app``; each is recorded as a recusal."""
    the_parties = parties(app.document)
    found = {}
    for person in people:
        reasons = conflicts(person.siren, person.interests, the_parties)
        if reasons:
            found[person.id] = "; ".join(r.reason for r in reasons)
    if found:
        known = set(session.scalars(select(Recusal.reviewer_id)
                                    .where(Recusal.application_id == app.id)))
        for reviewer_id, reason in found.items():
            if reviewer_id not in known:
                session.add(Recusal(application_id=app.id, reviewer_id=reviewer_id,
                                    reason=reason, at=now))
        session.flush()
    return found


# --- assignment --------------------------------------------------------------------------

@dataclass(slots=True)
class Assignment:
    assigned: dict[str, list[str]] = field(default_factory=dict)    # reference -> emails
    short: dict[str, int] = field(default_factory=dict)             # reference -> available


def assign(session: Session, references: list[str] | None, policy: ReviewPolicy, *,
           actor: str, now: dt.datetime) -> Assignment:
    """Give each eligible application ``reviewers_per_application`` non-conflicted reviewers,
    fewest current assignments first (ties by email), and move it to ``in_review``. One that
    cannot get enough stays ``eligible`` and is reported."""
    query = select(Application).where(Application.status == Status.eligible)
    if references:
        query = query.where(Application.reference.in_([r.strip().upper() for r in references]))
    # Locked in id order: a concurrent assigner waits, then (READ COMMITTED re-checks the
    # status) finds them in review and skips them; no duplicate assignment is ever tried.
    apps = session.scalars(query.order_by(Application.id).with_for_update(of=Application)
                           .execution_options(populate_existing=True)).all()
    reviewers = session.scalars(select(Reviewer).where(Reviewer.reviews, Reviewer.active)
                                .order_by(Reviewer.email)).all()
    load = dict(session.execute(
        select(Review.reviewer_id, func.count()).join(Application)
        .where(Review.scored_at.is_(None), Application.status == Status.in_review)
        .group_by(Review.reviewer_id)).tuples().all())
    result = Assignment()
    for app in apps:
        excluded = conflicted(session, app, list(reviewers), now)
        candidates = [(r.email, load.get(r.id, 0)) for r in reviewers if r.id not in excluded]
        if len(candidates) < policy.reviewers_per_application:
            result.short[app.reference] = len(candidates)
            continue
        chosen = pick_reviewers(candidates, policy.reviewers_per_application)
        by_email = {r.email: r for r in reviewers}
        for email in chosen:
            reviewer = by_email[email]
            session.add(Review(application_id=app.id, reviewer_id=reviewer.id, assigned_at=now))
            load[reviewer.id] = load.get(reviewer.id, 0) + 1
        enqueue(session, [message("review_assigned", email, {
            "reference": app.reference, "title": app.title,
            "reviewer_name": by_email[email].name, "reviewer_email": email,
            "region": app.region, "requested_amount": as_str(app.requested_amount),
        }, key=f"review_assigned:{app.reference}:{email}", now=now, reference=app.reference)
            for email in chosen])
        app.transition_to(Status.in_review, actor=actor, at=now,
                          reason=f"évaluateurs désignés : {', '.join(chosen)}")
        result.assigned[app.reference] = chosen
    session.flush()
    return result


# --- scoring -----------------------------------------------------------------------------

def score(session: Session, reference: str, email: str, scores: dict[str, Any],
          comment: str, policy: ReviewPolicy, *, actor: str, now: dt.datetime) -> Fraction:
    """Record a reviewer's scores; when every assigned review is in, move to ``committee``.
    Returns the exact weighted score (recorded in thousandths). The application row is locked
    first: two last scores at once are serialised, so exactly one of them sees no review
    pending and moves it."""
    app = _app(session, reference, lock=True)
    reviewer = session.scalars(select(Reviewer).where(Reviewer.email == email.strip().lower())
                               ).first()
    if reviewer is None:
        raise NotFound(f"aucun évaluateur « {email} »")
    reason = conflicted(session, app, [reviewer], now).get(reviewer.id)
    if reason:
        raise DomainError(f"{app.reference} : {reviewer.email} est en conflit d'intérêts "
                          f"({reason}) et ne peut pas évaluer ce dossier")
    if app.status != Status.in_review:
        raise DomainError(f"{app.reference} : dossier au statut « {app.status} », il n'est pas "
                          "en évaluation")
    review = session.scalars(select(Review).where(Review.application_id == app.id,
                                                  Review.reviewer_id == reviewer.id)).first()
    if review is None:
        raise DomainError(f"{app.reference} : {reviewer.email} n'est pas désigné pour ce "
                          "dossier")
    problems = validate_scores(scores, policy)
    if problems:
        raise DomainError(f"{app.reference} : grille invalide : {'; '.join(problems)}")
    if not comment.strip():
        raise DomainError(f"{app.reference} : un commentaire est requis avec les notes")
    review.scores, review.comment, review.scored_at = dict(scores), comment.strip(), now
    review.weighted_milli = int(weighted(scores, policy) * 1000)
    session.flush()
    pending = session.scalar(select(func.count()).select_from(Review).where(
        Review.application_id == app.id, Review.scored_at.is_(None)))
    if pending == 0:
        app.transition_to(Status.committee, actor=actor, at=now,
                          reason="toutes les évaluations sont rendues")
    return exact_weighted(scores, policy)


def advance_reviewed(session: Session, *, actor: str, now: dt.datetime) -> list[str]:
    """Move to ``committee`` every application whose assigned reviews are all in (the state a
    run killed between scoring and moving could leave)."""
    waiting = select(Review.application_id).where(Review.scored_at.is_(None))
    apps = session.scalars(select(Application).where(
        Application.status == Status.in_review, Application.id.not_in(waiting),
        Application.id.in_(select(Review.application_id)))
        .order_by(Application.id).with_for_update(of=Application, skip_locked=True)
        .execution_options(populate_existing=True)).all()
    for app in apps:
        app.transition_to(Status.committee, actor=actor, at=now,
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


# --- committee ---------------------------------------------------------------------------

@dataclass(slots=True)
class Ranking:
    available: Decimal
    items: list[Proposal]
    titles: dict[str, str]


def ranking(session: Session, *, alert_threshold: Decimal, policy: ReviewPolicy) -> Ranking:
    """The applications before the committee ranked by exact score, and what fits."""
    apps = session.scalars(select(Application).where(Application.status == Status.committee)
                           .order_by(Application.id)).all()
    ranked = [(a.reference, application_score(session, a.id, policy) or Fraction(0),
               a.requested_amount) for a in apps]
    report = finance.finance_report(session, alert_threshold=alert_threshold)
    available = Decimal(report["available"])
    return Ranking(available, propose(ranked, available), {a.reference: a.title for a in apps})


def proposal(session: Session, *, alert_threshold: Decimal,
             policy: ReviewPolicy) -> dict[str, Any]:
    result = ranking(session, alert_threshold=alert_threshold, policy=policy)
    items = result.items
    return {
        "available": as_str(result.available),
        "proposed_total": as_str(sum((p.amount for p in items if p.funded), Decimal(0))),
        "applications": [{"reference": p.reference, "title": result.titles[p.reference],
                          "score": score_text(p.score), "amount": as_str(p.amount),
                          "proposed": p.funded} for p in items],
    }


def record_decision(session: Session, reference: str, outcome: str, *, present: list[str],
                    amount: Decimal | None, motif: str, actor: str,
                    now: dt.datetime) -> Decision:
    """Check and record a committee decision (pending until applied). The application row
    is locked first, so two deciders at once are serialised and the second is told it is
    already decided (or being applied) and records nothing."""
    app = _app(session, reference, lock=True)
    if app.status in DECIDED:
        raise DomainError(f"déjà décidé : {app.reference} est au statut « {app.status} » ; "
                          "rien n'a été enregistré")
    if app.status != Status.committee:
        raise DomainError(f"{app.reference} : dossier au statut « {app.status} », il n'est pas "
                          "devant le comité")
    pending = session.scalar(select(Decision).where(
        Decision.application_id == app.id, Decision.applied_at.is_(None),
        Decision.error.is_(None)).order_by(Decision.id).limit(1))
    if pending is not None:
        raise DomainError(f"déjà décidé : {app.reference} a une décision « {pending.outcome} » "
                          f"en cours d'application (n°{pending.id}) ; rien n'a été enregistré")
    try:
        kind = DecisionOutcome(outcome)
    except ValueError:
        raise DomainError(f"décision inconnue « {outcome} »") from None
    if kind is DecisionOutcome.reject and not motif.strip():
        raise DomainError(f"{app.reference} : un refus doit être motivé (--motif)")
    if kind is DecisionOutcome.approve:
        amount = app.requested_amount if amount is None else amount
        if (refusal := award_refusal(amount, app.requested_amount)) is not None:
            raise DomainError(f"{app.reference} : {refusal}")
    members = session.scalars(select(Reviewer).where(Reviewer.committee, Reviewer.active)).all()
    emails = {e.strip().lower() for e in present}
    unknown = sorted(emails - {m.email for m in members})
    if unknown:
        raise DomainError(f"ne sont pas membres du comité : {', '.join(unknown)}")
    recused_ids = conflicted(session, app, list(members), now)
    eligible = [m for m in members if m.id not in recused_ids]
    voting = sorted(m.email for m in eligible if m.email in emails)
    recused = sorted(m.email for m in members if m.id in recused_ids and m.email in emails)
    if not has_quorum(len(voting), len(eligible)):
        raise DomainError(
            f"{app.reference} : quorum non atteint : {len(voting)} membre(s) présent(s) non "
            f"récusé(s) sur {len(eligible)} ; il en faut plus de la moitié"
            + (f" (récusés : {', '.join(recused)})" if recused else ""))
    decision = Decision(application_id=app.id, outcome=kind,
                        amount=amount if kind is DecisionOutcome.approve else None,
                        motif=motif.strip(),
                        present=voting, recused=recused, recorded_by=actor, recorded_at=now)
    session.add(decision)
    session.flush()
    return decision


def apply_decision(session: Session, decision_id: int, *, plan: TranchePlan,
                   alert_threshold: Decimal, actor: str, now: dt.datetime) -> ledger.Result | None:
    """Apply a recorded decision: an approval reserves through the ledger (refused, with no
    change, when the envelope cannot bear it); a refusal moves to ``rejected``; a deferral keeps
    the application before the committee."""
    decision = _locked_decision(session, decision_id)
    if decision is None or decision.applied_at is not None:
        return None  # applied meanwhile by another run (the lock made us wait for it)
    app = session.get_one(Application, decision.application_id)
    result = None
    if decision.outcome == DecisionOutcome.approve:
        assert decision.amount is not None
        result = ledger.approve(
            UnitOfWork(session, Context.from_settings(actor), now), app.reference,
            decision.amount, plan=plan, key=f"decision:{decision.id}",
            reason=f"décision du comité : accord de {eur(decision.amount)} "
                   f"(présents : {', '.join(decision.present)})")
        grant = finance.grant_detail(session, app)
        assert grant is not None
        enqueue(session, [message("decision_approved", app.contact_email, {
            **_applicant(app), "amount": grant["awarded"],
            "tranches": [{k: t[k] for k in ("number", "label", "amount", "due_on")}
                         for t in grant["tranches"]],
        }, key=f"decision_approved:{app.reference}:{decision.id}", now=now,
            reference=app.reference)])
    elif decision.outcome == DecisionOutcome.reject:
        app.transition_to(Status.rejected, actor=actor, at=now,
                          reason=f"décision du comité : refus — {decision.motif}")
        enqueue(session, [message("decision_rejected", app.contact_email, {
            **_applicant(app), "motif": decision.motif,
        }, key=f"decision_rejected:{app.reference}:{decision.id}", now=now,
            reference=app.reference)])
    decision.applied_at = now
    session.flush()
    return result


def _applicant(app: Application) -> dict[str, Any]:
    lead = app.document["lead"]
    return {"reference": app.reference, "title": app.title, "lead_name": lead["name"],
            "contact_name": lead.get("contact_name")}


def pending_decisions(session: Session) -> list[int]:
    return list(session.scalars(select(Decision.id).where(
        Decision.applied_at.is_(None), Decision.error.is_(None)).order_by(Decision.id)))


def _locked_decision(session: Session, decision_id: int) -> Decision | None:
    return session.scalars(select(Decision).where(Decision.id == decision_id)
                           .with_for_update().execution_options(populate_existing=True)).first()


def mark_failed(session: Session, decision_id: int, error: str) -> None:
    """Record why a decision could not be applied (never on one another run applied)."""
    decision = _locked_decision(session, decision_id)
    if decision is not None and decision.applied_at is None:
        decision.error = error


def review_detail(session: Session, app: Application,
                  policy: ReviewPolicy | None = None) -> dict[str, Any]:
    """``policy``: the rubric scores are computed under (default: the configured one)."""
    policy = policy or get_fund_config().review
    reviews = session.scalars(select(Review).where(Review.application_id == app.id)
                              .order_by(Review.id)).all()
    recusals = session.scalars(select(Recusal).where(Recusal.application_id == app.id)
                               .order_by(Recusal.id)).all()
    decisions = session.scalars(select(Decision).where(Decision.application_id == app.id)
                                .order_by(Decision.id)).all()
    score_ = application_score(session, app.id, policy)
    return {
        "reviews": [{"reviewer": r.reviewer.email, "name": r.reviewer.name,
                     "scores": r.scores, "weighted_score": score_text(review_value(r, policy)),
                     "comment": r.comment,
                     "scored_at": r.scored_at.isoformat() if r.scored_at else None}
                    for r in reviews],
        "score": score_text(score_),
        "recusals": [{"reviewer": r.reviewer.email, "reason": r.reason} for r in recusals],
        "decision": None if not decisions else {
            "outcome": decisions[-1].outcome,
            "amount": as_str(decisions[-1].amount) if decisions[-1].amount else None,
            "motif": decisions[-1].motif, "present": decisions[-1].present,
            "recused": decisions[-1].recused,
            "recorded_at": decisions[-1].recorded_at.isoformat(),
            "applied_at": decisions[-1].applied_at.isoformat()
            if decisions[-1].applied_at else None,
            "error": decisions[-1].error},
    }


def list_reviewers(session: Session) -> list[dict[str, Any]]:
    """Reviewers and committee members, by e-mail (the ``--json`` shape of ``reviewers
    list``)."""
    return [{"email": r.email, "name": r.name, "siren": r.siren, "interests": r.interests,
             "committee": r.committee, "reviews": r.reviews}
            for r in session.scalars(select(Reviewer).order_by(Reviewer.email))]
