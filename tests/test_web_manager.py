"""The fund manager's workspace (odd17/web/manager.py) through HTTP: the board (counts, filters,
search, pages, a bad filter), the application's page, each action (comment, automatic and
chosen reviewers, re-evaluation previewed then done) with its CSRF check, the role check,
unknown references answering 404, and hostile text escaped."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, update

from models import Application, Comment, EligibilityEvaluation, Review, Reviewer, Status
from odd17.services import attachments, drafts, submission
from odd17.settings import reset_caches
from odd17.uow import Context, Runner
from tests.factories import VALID, application, eligible
from tests.webutil import (
    APPLICANT,
    REVIEWER,
    STAFF,
    Clock,
    add_people,
    client,
    form_token,
    open_session,
    uow_at,
    with_cookie,
)

HOSTILE = '<script>alert("x")</script>'
CONFLICTED = "conflit@evaluation.example.org"  # the SIREN of the documents' first partner
FREE = ("libre1@evaluation.example.org", "libre2@evaluation.example.org")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def refs(engine: Engine, clock: Clock) -> list[str]:
    """Three eligible applications (the last one's title is hostile), the staff, a reviewer,
    a conflicted reviewer and two free ones."""
    found = eligible(engine, 2) + eligible(engine, 1, start=2, title=HOSTILE)
    with uow_at(engine, clock) as uow:
        add_people(uow)
        for address, siren in ((CONFLICTED, "016613184"), (FREE[0], None), (FREE[1], None)):
            uow.session.add(Reviewer(email=address, name="Éva Luatrice", siren=siren,
                                     interests=[], reviews=True, committee=False, active=True,
                                     created_at=uow.now))
    return found


def browser(engine: Engine, clock: Clock, address: str = STAFF["manager"]) -> TestClient:
    return with_cookie(client(engine, clock), open_session(engine, clock, address)[0])


def token(b: TestClient) -> str:
    return form_token(b.get("/mon-espace").text)


def post(b: TestClient, path: str, data: dict[str, Any] | None = None,
         csrf: bool = True) -> Any:
    return b.post(path, data={**(data or {}), **({"csrf_token": token(b)} if csrf else {})})


def status_of(engine: Engine, ref: str) -> Status:
    with engine.connect() as conn:
        return Status(conn.execute(select(Application.status)
                                   .where(Application.reference == ref)).scalar_one())


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


# --- the board ------------------------------------------------------------------------------

def test_board_counts_filters_search_and_pages(engine: Engine, clock: Clock,
                                               refs: list[str]) -> None:
    b = browser(engine, clock)
    page = b.get("/gestion")
    assert page.status_code == 200
    assert "3 dossiers" in page.text and all(r in page.text for r in refs)
    assert "éligible</a> : <strong>3</strong>" in page.text
    assert HOSTILE not in page.text and "&lt;script&gt;" in page.text  # escaped

    typed = b.get("/gestion", params={"search": HOSTILE})
    assert HOSTILE not in typed.text and 'value="&lt;script&gt;alert(&#34;x&#34;)' in typed.text
    searched = b.get("/gestion", params={"search": "n°1"})
    assert refs[1] in searched.text and refs[0] not in searched.text

    none = b.get("/gestion", params={"status": "in_review"})
    assert "Aucun dossier ne correspond" in none.text
    assert 'value="in_review" checked' in none.text  # the form shows what was asked

    first = b.get("/gestion", params={"per_page": "2", "status": "eligible"})
    assert "Page 1 sur 2" in first.text and "Page suivante" in first.text
    second = b.get("/gestion", params={"per_page": "2", "status": "eligible", "page": "2"})
    assert refs[0] in second.text and refs[2] not in second.text  # newest first
    assert "status=eligible" in second.text  # the page links keep the filters


def test_a_bad_filter_is_named_in_french(engine: Engine, clock: Clock,
                                         refs: list[str]) -> None:
    b = browser(engine, clock)
    page = b.get("/gestion", params={"score_min": "90", "score_max": "10"})
    assert page.status_code == 400
    assert "Filtre invalide" in page.text and "dépasse le maximum" in page.text
    assert "Traceback" not in page.text
    assert b.get("/gestion", params={"score_min": "beaucoup"}).status_code == 400


# --- who may come in ------------------------------------------------------------------------

def manager_paths(ref: str) -> list[tuple[str, str]]:
    return [("GET", "/gestion"), ("GET", f"/gestion/dossiers/{ref}"),
            ("GET", f"/gestion/dossiers/{ref}/reevaluation"),
            ("POST", f"/gestion/dossiers/{ref}/commentaires"),
            ("POST", f"/gestion/dossiers/{ref}/attribution"),
            ("POST", f"/gestion/dossiers/{ref}/evaluateurs"),
            ("POST", f"/gestion/dossiers/{ref}/reevaluation"),
            ("GET", f"/gestion/dossiers/{ref}/pieces/1")]


@pytest.mark.parametrize("who", [APPLICANT, REVIEWER, STAFF["finance"], STAFF["admin"]])
def test_other_roles_are_refused(engine: Engine, clock: Clock, refs: list[str],
                                 who: str) -> None:
    b = browser(engine, clock, who)
    for method, path in manager_paths(refs[0]):
        data = {"csrf_token": token(b), "body": "intrus"} if method == "POST" else None
        assert b.request(method, path, data=data).status_code == 403, (method, path)
    assert count(engine, Comment) == 0 and status_of(engine, refs[0]) is Status.eligible
    assert "Gestion des dossiers" not in b.get("/mon-espace").text


def test_anonymous_is_sent_to_sign_in(engine: Engine, clock: Clock, refs: list[str]) -> None:
    b = client(engine, clock)
    anonymous_token = form_token(b.get("/connexion").text)
    for method, path in manager_paths(refs[0]):
        if method == "POST":  # without a token: the CSRF refusal; with one: sign in first
            assert b.post(path).status_code == 403, path
        answer = b.request(method, path, data={"csrf_token": anonymous_token}
                           if method == "POST" else None)
        assert answer.status_code == 303, (method, path)
        assert answer.headers["location"].endswith("/connexion")
    assert count(engine, Comment) == 0


def test_unknown_reference_is_404_everywhere(engine: Engine, clock: Clock,
                                             refs: list[str]) -> None:
    b = browser(engine, clock)
    for method, path in manager_paths("ODD17-2099-99999")[1:]:
        data = {"csrf_token": token(b), "body": "x", "reviewer": FREE} if method == "POST" \
            else None
        answer = b.request(method, path, data=data)
        assert answer.status_code == 404, (method, path, answer.text)
        assert "Page introuvable" in answer.text
    assert count(engine, Comment) == 0


def test_my_space_links_to_the_workspace(engine: Engine, clock: Clock,
                                         refs: list[str]) -> None:
    assert "Gestion des dossiers" in browser(engine, clock).get("/mon-espace").text


# --- the application's page and its actions -------------------------------------------------

def test_application_page_shows_everything(engine: Engine, clock: Clock,
                                           refs: list[str]) -> None:
    page = browser(engine, clock).get(f"/gestion/dossiers/{refs[2].lower()}")
    assert page.status_code == 200
    text = page.text
    assert f"Dossier {refs[2]}" in text
    assert "Respecté" in text and "Non respecté" not in text  # rule by rule
    assert "éligible" in text and "Désigner automatiquement" in text
    assert HOSTILE not in text and "&lt;script&gt;alert" in text
    # every reviewer, those who cannot be chosen with why (and not selectable)
    assert CONFLICTED in text and "conflit d&#39;intérêts" in text
    assert 'value="' + CONFLICTED + '" disabled' in text
    assert "Réévaluer l'éligibilité" in text


def test_comment_with_csrf_then_shown_escaped_in_history(engine: Engine, clock: Clock,
                                                         refs: list[str]) -> None:
    b = browser(engine, clock)
    path = f"/gestion/dossiers/{refs[0]}/commentaires"
    refused = post(b, path, {"body": HOSTILE}, csrf=False)
    assert refused.status_code == 403 and "Formulaire expiré" in refused.text
    assert count(engine, Comment) == 0

    done = post(b, path, {"body": HOSTILE})
    assert done.status_code == 303
    shown = b.get(done.headers["location"])
    assert "Commentaire interne enregistré." in shown.text
    assert "commentaire interne</strong> — <span class=\"comment\">&lt;script&gt;" in shown.text
    assert HOSTILE not in shown.text
    with engine.connect() as conn:
        assert conn.execute(select(Comment.author)).scalar_one() == f"web:{STAFF['manager']}"

    empty = post(b, path, {"body": "   "})
    assert empty.status_code == 400 and "commentaire vide" in empty.text
    assert count(engine, Comment) == 1


def test_assign_automatically(engine: Engine, clock: Clock, refs: list[str]) -> None:
    b = browser(engine, clock)
    path = f"/gestion/dossiers/{refs[0]}/attribution"
    assert post(b, path, csrf=False).status_code == 403
    assert status_of(engine, refs[0]) is Status.eligible

    done = post(b, path)
    assert done.status_code == 303
    shown = b.get(done.headers["location"]).text
    assert "Évaluateurs désignés" in shown
    assert CONFLICTED not in shown.split("Récusations")[0].split("Évaluateurs</h2>")[1]
    assert status_of(engine, refs[0]) is Status.in_review
    again = post(b, path)  # in review now: refused, said in French
    assert again.status_code == 400 and "pas éligible" in again.text


def test_choose_reviewers(engine: Engine, clock: Clock, refs: list[str]) -> None:
    b = browser(engine, clock)
    path = f"/gestion/dossiers/{refs[1]}/evaluateurs"
    assert post(b, path, {"reviewer": list(FREE)}, csrf=False).status_code == 403

    refused = post(b, path, {"reviewer": [FREE[0], CONFLICTED]})
    assert refused.status_code == 400
    assert "ne peut pas être désigné" in refused.text and "conflit" in refused.text
    assert count(engine, Review) == 0

    too_few = post(b, path, {"reviewer": [FREE[0]]})
    assert too_few.status_code == 400 and "2 évaluateur(s) à désigner" in too_few.text

    done = post(b, path, {"reviewer": list(FREE)})
    assert done.status_code == 303
    shown = b.get(done.headers["location"]).text
    assert "Évaluateurs désignés" in shown
    assert all(f"({e})</td>" in shown for e in FREE)  # the reviews' table
    assert status_of(engine, refs[1]) is Status.in_review
    with engine.connect() as conn:
        chosen = set(conn.execute(select(Reviewer.email).join(Review)).scalars())
    assert chosen == set(FREE)


def test_reevaluate_previews_then_writes(engine: Engine, clock: Clock,
                                         refs: list[str]) -> None:
    # judged ineligible earlier (under another policy): re-evaluating makes it eligible
    with engine.begin() as conn:
        conn.execute(update(Application).where(Application.reference == refs[0])
                     .values(status=Status.ineligible))
    b = browser(engine, clock)
    before = count(engine, EligibilityEvaluation)
    preview = b.get(f"/gestion/dossiers/{refs[0]}/reevaluation")
    assert preview.status_code == 200
    assert "Statut actuel</dt><dd>inéligible" in preview.text
    assert "Après réévaluation</dt><dd><strong>éligible" in preview.text
    assert "Le statut changera" in preview.text
    assert count(engine, EligibilityEvaluation) == before  # the preview wrote nothing
    assert status_of(engine, refs[0]) is Status.ineligible

    path = f"/gestion/dossiers/{refs[0]}/reevaluation"
    assert post(b, path, csrf=False).status_code == 403
    assert count(engine, EligibilityEvaluation) == before

    done = post(b, path)
    assert done.status_code == 303
    assert "Éligibilité réévaluée." in b.get(done.headers["location"]).text
    assert status_of(engine, refs[0]) is Status.eligible
    assert count(engine, EligibilityEvaluation) == before + 1

    unchanged = b.get(f"/gestion/dossiers/{refs[1]}/reevaluation")
    assert "Le statut ne changera pas" in unchanged.text


def test_reevaluate_refused_once_in_review(engine: Engine, clock: Clock,
                                           refs: list[str]) -> None:
    b = browser(engine, clock)
    assert post(b, f"/gestion/dossiers/{refs[0]}/attribution").status_code == 303
    before = count(engine, EligibilityEvaluation)
    preview = b.get(f"/gestion/dossiers/{refs[0]}/reevaluation")
    assert "ne se réévalue plus" in preview.text and "Confirmer" not in preview.text
    refused = post(b, f"/gestion/dossiers/{refs[0]}/reevaluation")
    assert refused.status_code == 400 and "ne se réévalue plus" in refused.text
    assert count(engine, EligibilityEvaluation) == before
    assert status_of(engine, refs[0]) is Status.in_review


def test_attachments_listed_and_downloaded(engine: Engine, clock: Clock, refs: list[str],
                                           tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ODD17_UPLOAD_DIR", str(tmp_path / "uploads"))
    reset_caches()
    lead = "direction@depot.example.org"
    content = b"%PDF-1.7\nstatuts\n%%EOF\n"
    with uow_at(engine, clock) as uow:
        document = application(lead={**VALID["lead"], "email": lead})
        document.pop("documents")
        draft = drafts.create_draft(uow, lead, document=document)
        attachments.add_attachment(uow, attachments.UploadStore.from_settings(), draft, lead,
                                   "statuts", "statuts.pdf", io.BytesIO(content))
    ref = submission.submit(Runner(engine, Context.from_settings("t", clock=clock)), draft,
                            lead)["reference"]
    assert ref is not None
    with uow_at(engine, clock) as uow:
        [piece] = attachments.attachments_of(uow, ref)
    b = browser(engine, clock)
    page = b.get(f"/gestion/dossiers/{ref}")
    link = f"/gestion/dossiers/{ref}/pieces/{piece['id']}"
    assert f'href="http://testserver{link}" download>statuts.pdf</a>' in page.text
    got = b.get(link)
    assert got.status_code == 200 and got.content == content
    assert got.headers["content-disposition"].startswith("attachment")
    # the file of another application, an unknown or malformed id: the same 404
    for wrong in (f"/gestion/dossiers/{refs[0]}/pieces/{piece['id']}",
                  f"/gestion/dossiers/{ref}/pieces/999", f"/gestion/dossiers/{ref}/pieces/x1"):
        assert b.get(wrong).status_code == 404, wrong
    assert browser(engine, clock, lead).get(link).status_code == 403
    reset_caches()
