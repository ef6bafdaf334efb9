"""Submitting a draft (issue 13): the same schema, intake and eligibility as ``odd17 submit``.

Three steps, because intake runs its own transactions (it takes the reference counter's lock):
1. read the draft, check who asks, build the document (its call; its ``documents`` from the
   files actually attached) and validate it with intake's schema: errors, in French, per field;
2. ``pipeline.submit_and_evaluate`` on that one document (receipt email, eligibility);
3. link the draft and the files counted in step 1 to the application, by compare-and-set.

A crash between 2 and 3 leaves the draft unsubmitted; submitting again finds the stored
application as a duplicate whose source is this draft, and links it. A duplicate of an
application that came from elsewhere is refused without naming it (no enumeration)."""

from __future__ import annotations

from typing import Any, TypedDict

from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models import (
    Application,
    Attachment,
    AttachmentKind,
    ConcurrentChange,
    DomainError,
    Draft,
    EligibilityEvaluation,
)
from models.base import rows_matched
from odd17.services import intake, pipeline
from odd17.services.access import draft_for
from odd17.uow import Runner
from rules.document import ApplicationDocument, explain
from rules.eligibility import EligibilityPolicy


class Reason(TypedDict):
    rule: str
    passed: bool
    reason: str


class Submitted(TypedDict):
    reference: str | None  # None: refused (see errors)
    status: str  # the application's status, or "refused"
    eligible: bool | None
    reasons: list[Reason]
    errors: list[dict[str, str]]  # {field, message}, French


def source_of(draft_id: int) -> str:
    """The ``source`` an application made from this draft carries."""
    return f"brouillon:{draft_id}"


def pieces(attachments: list[Attachment]) -> list[str]:
    """The document's ``documents``: the kinds of the files attached, in a stable order."""
    kinds = {a.kind for a in attachments}
    return [k.value for k in AttachmentKind if k in kinds]


def prepare(draft: Draft, attachments: list[Attachment]) -> dict[str, Any]:
    """The document to submit: the draft's, on the draft's call, listing the files present."""
    return {**draft.document, "call": draft.call_id, "documents": pieces(attachments)}


def _refused(errors: list[dict[str, str]]) -> Submitted:
    return {"reference": None, "status": "refused", "eligible": None, "reasons": [],
            "errors": errors}


def submit(runner: Runner, draft_id: int, email: str, *, policy: EligibilityPolicy | None = None,
           language: str = "fr") -> Submitted:
    """Submit a draft (its lead or a co-applicant): the reference, the verdict and every
    reason; or the document's errors, nothing stored."""
    who = email.strip().lower()
    with runner.uow() as uow:
        draft = draft_for(uow.session, draft_id, who)
        if draft.application_id is not None:
            raise DomainError("ce brouillon a déjà été déposé")
        files = list(uow.session.scalars(select(Attachment).where(
            Attachment.draft_id == draft.id).order_by(Attachment.id)))
        document, file_ids = prepare(draft, files), [f.id for f in files]
    try:
        ApplicationDocument.model_validate(document)
    except ValidationError as exc:
        return _refused(explain(exc, language))
    raw = intake.RawDocument(source_of(draft_id), document)
    [outcome] = list(pipeline.submit_and_evaluate(
        runner, [raw], policy or runner.context.config.policy(), language=language,
        batch_size=1))
    if outcome.reference is None:
        return _refused(outcome.errors)
    with runner.uow() as uow:
        app = uow.session.scalars(select(Application)
                                  .where(Application.reference == outcome.reference)).one()
        if app.source != source_of(draft_id):
            raise DomainError("un dossier identique (même porteur, même titre) a déjà été "
                              "déposé : changez le titre, ou contactez le fonds")
        _link(uow.session, draft_id, app, file_ids)
        return _verdict(uow.session, app)


def _link(session: Session, draft_id: int, app: Application, file_ids: list[int]) -> None:
    table = Draft.__table__
    linked = rows_matched(session.execute(
        update(table).where(table.c.id == draft_id, table.c.application_id.is_(None))
        .values(application_id=app.id, submitted_at=app.submitted_at)))
    if linked != 1:
        found = session.scalar(select(table.c.application_id).where(table.c.id == draft_id))
        if found != app.id:  # pragma: no cover - needs a second application from one draft
            raise ConcurrentChange("ce brouillon a été déposé entre-temps ; rien n'a changé")
    if file_ids:
        files = Attachment.__table__
        session.execute(update(files).where(files.c.id.in_(file_ids))
                        .values(application_id=app.id))


def _verdict(session: Session, app: Application) -> Submitted:
    latest = session.scalars(select(EligibilityEvaluation)
                             .where(EligibilityEvaluation.application_id == app.id)
                             .order_by(EligibilityEvaluation.id.desc()).limit(1)).first()
    reasons: list[Reason] = [
        {"rule": r["rule"], "passed": bool(r["passed"]), "reason": r["reason"]}
        for r in (latest.results if latest else [])]
    return {"reference": app.reference, "status": app.status.value,
            "eligible": latest.eligible if latest else None, "reasons": reasons, "errors": []}
