"""Submitting a draft, following and withdrawing the application (issue 13): the same intake
and eligibility as `odd17 submit`, the pieces counted from the files attached."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from models import (
    Application,
    ConcurrentChange,
    DomainError,
    IllegalTransition,
    NotFound,
    OutboxMessage,
    Status,
)
from odd17.services import applicant, attachments, audit, drafts, intake, submission
from tests.applicant_helpers import LEAD, MEMBER, NOW, PUBLIC, STRANGER, pdf, runner, store, uow
from tests.factories import application
from tests.test_use_cases import decide, members


def ready_draft(engine: Engine, tmp_path: Path, kinds: tuple[str, ...] = (
        "statuts", "budget_previsionnel", "rib"), **changes: Any) -> int:
    document = application(**changes)
    document.pop("documents")
    with uow(engine) as u:
        draft = drafts.create_draft(u, LEAD, document=document)
        drafts.invite(u, draft, LEAD, MEMBER, public_url=PUBLIC)
        for kind in kinds:
            attachments.add_attachment(u, store(tmp_path), draft, MEMBER, kind, f"{kind}.pdf",
                                       io.BytesIO(pdf(kind)))
    return draft


def test_submit_gives_the_reference_the_verdict_and_every_reason(engine: Engine,
                                                                 tmp_path: Path) -> None:
    draft = ready_draft(engine, tmp_path)
    result = submission.submit(runner(engine), draft, MEMBER)
    assert result["errors"] == [] and result["status"] == "eligible" and result["eligible"]
    assert [r["rule"] for r in result["reasons"]][-1] == "pieces"
    assert len(result["reasons"]) == 11 and all(r["passed"] for r in result["reasons"])
    reference = result["reference"]
    assert reference is not None
    with uow(engine) as u:
        assert drafts.load_draft(u, draft, LEAD)["reference"] == reference
        app = u.session.scalars(select(Application)).one()
        assert app.source == submission.source_of(draft)
        assert app.document["documents"] == ["statuts", "budget_previsionnel", "rib"]
        [receipt] = u.session.scalars(select(OutboxMessage).where(
            OutboxMessage.event == "application_received")).all()
        assert receipt.recipient == application()["lead"]["email"]
        assert len(attachments.application_attachments(u, reference, MEMBER)) == 3
        with pytest.raises(DomainError, match="déposé"):
            drafts.save_draft(u, draft, LEAD, {"title": "plus tard"})
    with pytest.raises(DomainError, match="déjà été déposé"):
        submission.submit(runner(engine), draft, LEAD)


def test_pieces_count_the_files_not_what_the_document_says(engine: Engine,
                                                           tmp_path: Path) -> None:
    draft = ready_draft(engine, tmp_path, kinds=("statuts", "autre"),
                        documents=["statuts", "budget_previsionnel", "rib"])
    with uow(engine) as u:  # the document claims all three pieces
        doc = drafts.load_draft(u, draft, LEAD)["document"]
        drafts.save_draft(u, draft, LEAD, {**doc, "documents": ["statuts",
                                                                "budget_previsionnel", "rib"]})
    result = submission.submit(runner(engine), draft, LEAD)
    assert result["status"] == "ineligible" and result["eligible"] is False
    [failed] = [r for r in result["reasons"] if not r["passed"]]
    assert failed["rule"] == "pieces" and "budget_previsionnel, rib" in failed["reason"]


def test_an_invalid_draft_is_refused_field_by_field_and_nothing_is_stored(
        engine: Engine, tmp_path: Path) -> None:
    draft = ready_draft(engine, tmp_path, requested_amount="beaucoup", title="ab",
                        lead={"name": "X", "kind": "association"})
    result = submission.submit(runner(engine), draft, LEAD)
    assert result["reference"] is None and result["status"] == "refused"
    fields = {e["field"]: e["message"] for e in result["errors"]}
    assert fields["requested_amount"].startswith("montant invalide")
    assert fields["title"] == "trop court : au moins 5 caractère(s)"
    assert fields["lead.email"] == "champ obligatoire manquant"
    with uow(engine) as u:
        assert u.session.scalar(select(func.count()).select_from(Application)) == 0
        assert drafts.load_draft(u, draft, LEAD)["reference"] is None


def test_strangers_cannot_submit_and_a_resubmission_after_a_crash_links_the_same(
        engine: Engine, tmp_path: Path) -> None:
    draft = ready_draft(engine, tmp_path)
    with pytest.raises(NotFound, match="brouillon introuvable"):
        submission.submit(runner(engine), draft, STRANGER)
    # a process that stored the application then died before linking the draft
    with uow(engine) as u:
        doc = submission.prepare(u.session.get(drafts.Draft, draft), [])
    intake.submit_documents(runner(engine), [intake.RawDocument(submission.source_of(draft),
                                                                doc)])
    result = submission.submit(runner(engine), draft, LEAD)
    with uow(engine) as u:
        assert u.session.scalar(select(func.count()).select_from(Application)) == 1
        assert drafts.load_draft(u, draft, LEAD)["reference"] == result["reference"]


def test_a_duplicate_of_someone_elses_application_is_refused_without_its_reference(
        engine: Engine, tmp_path: Path) -> None:
    [outcome] = intake.submit_documents(runner(engine),
                                        [intake.RawDocument("cli", application())])
    draft = ready_draft(engine, tmp_path)
    with pytest.raises(DomainError) as refused:
        submission.submit(runner(engine), draft, LEAD)
    assert "identique" in str(refused.value) and str(outcome.reference) not in str(refused.value)
    # the draft's people get no view of that application
    with uow(engine) as u, pytest.raises(NotFound):
        applicant.application_page(u, str(outcome.reference), MEMBER)


def submitted(engine: Engine, tmp_path: Path) -> str:
    draft = ready_draft(engine, tmp_path)
    reference = submission.submit(runner(engine), draft, LEAD)["reference"]
    assert reference is not None
    return reference


def test_the_application_page_shows_history_reasons_decision_grant_and_files(
        engine: Engine, tmp_path: Path) -> None:
    reference = submitted(engine, tmp_path)
    with uow(engine) as u:
        app = u.session.scalars(select(Application)).one()
        app.transition_to(Status.in_review, actor="t", at=NOW)
        app.transition_to(Status.committee, actor="t", at=NOW)
    members(engine)
    decide(engine, reference, motif="Projet <b>solide</b>.")
    with uow(engine) as u:
        page = applicant.application_page(u, reference.lower(), MEMBER)
    assert [s["status"] for s in page["timeline"]] == [
        "submitted", "eligible", "in_review", "committee", "approved"]
    assert page["timeline"][0]["label"] and page["status_label"]
    assert page["eligible"] and len(page["eligibility"]) == 11
    assert page["decision"] is not None and page["decision"]["outcome"] == "approve"
    assert page["decision"]["motivation"] == "Projet <b>solide</b>."
    assert page["grant"] is not None and page["grant"]["awarded"] == "120000.00"
    assert [t["paid_on"] for t in page["grant"]["tranches"]] == [None, None, None]
    assert [a["kind"] for a in page["attachments"]] == ["statuts", "budget_previsionnel", "rib"]
    assert page["can_withdraw"] is False
    with uow(engine) as u:
        assert [a["reference"] for a in applicant.my_applications(u, MEMBER)] == [reference]
        assert applicant.my_applications(u, STRANGER) == []
        with pytest.raises(NotFound):
            applicant.application_page(u, reference, STRANGER)


def test_the_lead_withdraws_with_a_reason_recorded_in_the_history(engine: Engine,
                                                                   tmp_path: Path) -> None:
    reference = submitted(engine, tmp_path)
    with uow(engine) as u:
        assert applicant.application_page(u, reference, LEAD)["can_withdraw"]
        assert not applicant.application_page(u, reference, MEMBER)["can_withdraw"]
        with pytest.raises(NotFound):  # a co-applicant follows but does not withdraw
            applicant.withdraw(u, reference, MEMBER, "raison")
        with pytest.raises(DomainError, match="raison"):
            applicant.withdraw(u, reference, LEAD, "   ")
        with pytest.raises(DomainError, match="contrôle"):
            applicant.withdraw(u, reference, LEAD, "a\x00b")
    with uow(engine) as u:
        applicant.withdraw(u, reference, LEAD, "Le partenaire principal s'est retiré.")
    with uow(engine) as u:
        page = applicant.application_page(u, reference, MEMBER)
        assert page["status"] == "withdrawn" and not page["can_withdraw"]
        assert page["timeline"][-1]["reason"] == (
            "retrait du porteur : Le partenaire principal s'est retiré.")
        with pytest.raises(IllegalTransition):
            applicant.withdraw(u, reference, LEAD, "encore")
        assert audit.check(u) == []


def test_a_withdrawal_racing_a_status_change_loses_cleanly(engine: Engine,
                                                          tmp_path: Path) -> None:
    """The status read by the withdrawal is stale by the time it writes: compare-and-set."""
    reference = submitted(engine, tmp_path)
    with uow(engine) as u:
        app = applicant.application_for(u.session, reference, LEAD, lead_only=True)
        u.session.execute(Application.__table__.update().values(status=Status.in_review))
        with pytest.raises(ConcurrentChange, match="statut changé entre-temps"):
            app.transition_to(Status.withdrawn, actor=LEAD, at=NOW, reason="x")
