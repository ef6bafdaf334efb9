"""The applicant's pages (odd17/web/applicant.py) through HTTP: the form and its errors, files
(types, limits, names, download headers), co-applicants, submitting, withdrawing, CSRF on each
POST, and another applicant's identifiers answering 404."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from models import Application, Attachment, Status
from odd17.services.forms import document_to_form
from odd17.settings import reset_caches
from tests.applicant_helpers import PNG_BYTES, pdf
from tests.factories import VALID
from tests.webutil import Clock, client, form_token, open_session, uow_at, with_cookie

LEAD = "direction@nouvelle-alliance.example.org"
PARTNER = "contact@partenaire.example.org"
OTHER = "curieux@ailleurs.example.org"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(autouse=True)
def uploads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("ODD17_UPLOAD_DIR", str(tmp_path / "uploads"))
    monkeypatch.setenv("ODD17_UPLOAD_MAX_BYTES", "4096")
    reset_caches()
    yield tmp_path / "uploads"
    reset_caches()


def browser_of(engine: Engine, clock: Clock, address: str) -> TestClient:
    return with_cookie(client(engine, clock), open_session(engine, clock, address)[0])


def csrf(browser: TestClient) -> str:
    return form_token(browser.get("/mon-espace").text)


def new_draft(browser: TestClient) -> str:
    answer = browser.post("/brouillons", data={"csrf_token": csrf(browser)})
    assert answer.status_code == 303, answer.text
    return str(answer.headers["location"]).rsplit("/", 1)[1]


def document(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(VALID)
    doc["lead"]["email"] = LEAD
    doc.pop("documents")
    doc.update(changes)
    return doc


def post_form(browser: TestClient, draft: str, doc: dict[str, Any],
              action: str = "save") -> Any:
    fields: list[tuple[str, str]] = [("csrf_token", csrf(browser)), ("action", action)]
    for name, value in document_to_form(doc).items():
        fields += [(name, v) for v in (value if isinstance(value, list) else [value])]
    return browser.post(f"/brouillons/{draft}", content=urlencode(fields),
                        headers={"Content-Type": "application/x-www-form-urlencoded"})


def attach(browser: TestClient, draft: str, kind: str, name: str, content: bytes) -> Any:
    return browser.post(f"/brouillons/{draft}/pieces", data={"csrf_token": csrf(browser),
                                                             "kind": kind},
                        files={"fichier": (name, content, "application/octet-stream")})


def test_form_errors_beside_each_field_then_submit_then_withdraw(engine: Engine,
                                                                 clock: Clock) -> None:
    with browser_of(engine, clock, LEAD) as lead:
        draft = new_draft(lead)
        page = post_form(lead, draft, document(requested_amount="abc", title="x"))
        assert page.status_code == 200 and "Brouillon enregistré" in page.text
        assert 'id="erreurs"' in page.text and 'href="#f-requested_amount"' in page.text
        assert 'aria-describedby="f-requested_amount-aide f-requested_amount-erreur"' \
            in page.text and 'aria-invalid="true"' in page.text
        assert "montant" in page.text.lower()
        fixed = post_form(lead, draft, document())
        assert 'id="erreurs"' not in fixed.text and "Il est complet" in fixed.text
        for kind in ("statuts", "budget_previsionnel", "rib"):
            assert attach(lead, draft, kind, f"{kind}.pdf", pdf(kind)).status_code == 303
        done = post_form(lead, draft, document(), action="submit")
        assert done.status_code == 303, done.text
        reference = done.headers["location"].split("/dossiers/")[1].split("?")[0]
        shown = lead.get(done.headers["location"])
        assert reference in shown.text and "Dossier éligible" in shown.text
        assert "Respecté" in shown.text and "Retirer le dossier" in shown.text
        # the draft can no longer change
        assert attach(lead, draft, "autre", "x.pdf", pdf()).status_code == 400
        refused = lead.post(f"/dossiers/{reference}/retrait",
                            data={"csrf_token": csrf(lead), "reason": "  "})
        assert refused.status_code == 400 and "indiquez la raison du retrait" in refused.text
        gone = lead.post(f"/dossiers/{reference}/retrait",
                         data={"csrf_token": csrf(lead), "reason": "Projet abandonné"})
        assert gone.status_code == 303
        assert "retiré" in lead.get(gone.headers["location"]).text
    with uow_at(engine, clock) as uow:
        app = uow.session.scalars(select(Application)).one()
        assert app.status is Status.withdrawn


def test_rows_are_added_and_removed_without_javascript(engine: Engine, clock: Clock) -> None:
    with browser_of(engine, clock, LEAD) as lead:
        draft = new_draft(lead)
        page = post_form(lead, draft, document(), action="add:partners")
        assert 'name="partners[2].name"' in page.text  # a third, empty row
        page = post_form(lead, draft, document(), action="remove:partners:0")
        assert "Logistique Seine Aval" not in page.text and "GPS&amp;O" in page.text
        assert "<script" not in lead.get(f"/brouillons/{draft}").text.split("</head>")[1]


def test_user_text_is_escaped(engine: Engine, clock: Clock) -> None:
    with browser_of(engine, clock, LEAD) as lead:
        draft = new_draft(lead)
        page = post_form(lead, draft, document(title='<script>alert("x")</script>'))
        assert "<script>alert" not in page.text and "&lt;script&gt;alert" in page.text


def test_uploads_that_lie_or_are_too_large_are_refused_in_french(engine: Engine, clock: Clock,
                                                                 uploads: Path) -> None:
    with browser_of(engine, clock, LEAD) as lead:
        draft = new_draft(lead)
        lie = attach(lead, draft, "statuts", "statuts.pdf", PNG_BYTES)
        assert lie.status_code == 400
        assert "son nom annonce un PDF mais son contenu est un PNG" in lie.text
        exe = attach(lead, draft, "statuts", "statuts.exe", b"MZ\x90\x00" * 10)
        assert exe.status_code == 400 and "son contenu n&#39;est pas un PDF" in exe.text
        big = attach(lead, draft, "statuts", "gros.pdf", pdf("x" * 5000))
        assert big.status_code == 400 and "trop volumineux : au plus 4 Ko" in big.text
        huge = attach(lead, draft, "statuts", "enorme.pdf", pdf("x" * 200_000))
        assert huge.status_code == 413 and "Fichier trop volumineux" in huge.text
        assert not any(p.is_file() for p in uploads.rglob("*"))
        sneaky = attach(lead, draft, "autre", "../../../etc/passwd.pdf", pdf("x"))
        assert sneaky.status_code == 303
        assert "passwd.pdf" in lead.get(sneaky.headers["location"]).text
        assert not (uploads.parent / "etc").exists()
        with uow_at(engine, clock) as uow:
            [row] = uow.session.scalars(select(Attachment)).all()
        assert row.filename == "passwd.pdf"
        assert all(p.parent.parent == uploads for p in uploads.rglob("*") if p.is_file())
        got = lead.get(f"/pieces/{row.id}")
        assert got.status_code == 200 and got.content == pdf("x")
        assert got.headers["content-type"] == "application/pdf"
        assert got.headers["content-disposition"].startswith("attachment;")
        assert got.headers["x-content-type-options"] == "nosniff"
        removed = lead.post(f"/brouillons/{draft}/pieces/{row.id}/retrait",
                            data={"csrf_token": csrf(lead)})
        assert removed.status_code == 303
        assert "Aucune pièce jointe" in lead.get(removed.headers["location"]).text
        assert lead.get(f"/pieces/{row.id}").status_code == 404


def test_a_co_applicant_edits_and_another_applicant_gets_404(engine: Engine,
                                                             clock: Clock) -> None:
    with browser_of(engine, clock, LEAD) as lead:
        draft = new_draft(lead)
        post_form(lead, draft, document())
        attach(lead, draft, "statuts", "statuts.pdf", pdf())
        invited = lead.post(f"/brouillons/{draft}/co-porteurs",
                            data={"csrf_token": csrf(lead), "email": PARTNER})
        assert invited.status_code == 303
        shown = lead.get(invited.headers["location"]).text
        assert "Invitation envoyée" in shown and PARTNER in shown
    with uow_at(engine, clock) as uow:
        piece = uow.session.scalars(select(Attachment.id)).one()
    with browser_of(engine, clock, PARTNER) as partner:
        page = partner.get(f"/brouillons/{draft}")
        assert page.status_code == 200 and "Envoyer l'invitation" not in page.text  # lead only
        saved = post_form(partner, draft, document(title="Alliance revue par le partenaire"))
        assert "Alliance revue par le partenaire" in saved.text
        refused = partner.post(f"/brouillons/{draft}/co-porteurs",
                               data={"csrf_token": csrf(partner), "email": OTHER})
        assert refused.status_code == 404
    with browser_of(engine, clock, OTHER) as other:
        mine = new_draft(other)  # another applicant, with a draft of their own
        missing = other.get("/brouillons/999999")
        for answer in (other.get(f"/brouillons/{draft}"), other.get(f"/pieces/{piece}"),
                       post_form(other, draft, document()),
                       other.post(f"/brouillons/{draft}/pieces/{piece}/retrait",
                                  data={"csrf_token": csrf(other)}),
                       attach(other, draft, "autre", "a.pdf", pdf()),
                       other.get("/dossiers/ODD17-2026-0001"), other.get("/brouillons/abc")):
            assert answer.status_code == 404 and answer.text == missing.text
        assert other.get(f"/brouillons/{mine}").status_code == 200


@pytest.mark.parametrize("path", [
    "/brouillons", "/brouillons/{d}", "/brouillons/{d}/co-porteurs",
    "/brouillons/{d}/co-porteurs/retrait", "/brouillons/{d}/pieces",
    "/brouillons/{d}/pieces/1/retrait", "/dossiers/ODD17-2026-0001/retrait"])
def test_every_post_without_the_csrf_token_is_refused(path: str, engine: Engine,
                                                      clock: Clock) -> None:
    with browser_of(engine, clock, LEAD) as lead:
        draft = new_draft(lead)
        for token in (None, "x" * 43):
            data = {"email": PARTNER, "reason": "r", "action": "save"}
            if token:
                data["csrf_token"] = token
            answer = lead.post(path.replace("{d}", draft), data=data)
            assert answer.status_code == 403 and "Formulaire expiré" in answer.text
