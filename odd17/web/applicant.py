"""The applicant's pages (issue 13): the open calls, drafts (the form, co-applicants, files),
submitting, the application's page and withdrawing it. Each route calls the use case of
odd17/services (drafts, attachments, submission, applicant), which checks who may see what:
anything not theirs answers the same 404 as what does not exist.

The draft form is one HTML form: its buttons say what to do (``action``: save, submit, add or
remove a row of a repeated group), so it all works without JavaScript; htmx posts the same
form for the add/remove buttons and swaps only the group (and saves the draft on the way)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData, UploadFile
from starlette.types import Message

from models import DomainError, NotFound
from odd17.services import applicant, attachments, drafts, forms, submission
from odd17.services.access import Principal
from odd17.settings import get_settings
from odd17.uow import Context, Runner, UnitOfWork
from odd17.web.deps import Guard, check_csrf, run, signed_in_email, uow
from odd17.web.templating import page
from rules.labels import INNOVATION_LABELS, OBJECTIVE_LABELS, status_label

router = APIRouter()
CSRF = [Depends(check_csrf)]
_ACTION = re.compile(r"(?P<verb>add|remove):(?P<group>partners|cofunding)(?::(?P<row>\d{1,4}))?")
KIND_LABELS = {"statuts": "Statuts", "budget_previsionnel": "Budget prévisionnel",
               "rib": "RIB", "autre": "Autre pièce"}
FIELD_LABELS = {"title": "Titre", "summary": "Résumé", "lead": "Structure porteuse",
                "partners": "Partenaires", "cofunding": "Cofinancements",
                "objectives": "Objectifs", "innovations": "Innovations",
                "territory": "Territoire", "requested_amount": "Montant demandé",
                "total_budget": "Budget total", "start_date": "Date de début",
                "duration_months": "Durée", "documents": "Pièces jointes", "call": "Appel"}
# what a page says after an action that redirected to it (Post/Redirect/Get: a reload does not
# post again); ``?fait=<key>``
DONE = {"invitation": "Invitation envoyée.", "co-porteur-retire": "Co-porteur retiré du brouillon.",
        "piece": "Pièce jointe au brouillon.", "piece-retiree": "Pièce retirée du brouillon."}
ORG_KINDS = {"association": "Association", "fondation": "Fondation",
             "entreprise": "Entreprise", "collectivite": "Collectivité", "etat": "État",
             "academique": "Établissement d'enseignement ou de recherche"}




def _number(text: str) -> int:
    if not text.isdigit() or len(text) > 12:
        raise HTTPException(404)
    return int(text)


def _str(form: FormData, name: str, limit: int = 400) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


@router.get("/appels", name="open_calls")
def open_calls(request: Request, user: Principal | None = Guard("open_calls")) -> HTMLResponse:
    calls = run(request, drafts.open_calls)
    return page(request, "appels.html", {"calls": calls, "error": None})


@router.post("/brouillons", name="draft_create", dependencies=CSRF)
async def draft_create(request: Request,
                       user: Principal | None = Guard("draft_create")) -> Response:
    call = _str(await request.form(), "call", 50) or None
    try:
        with uow(request) as unit:
            draft_id = drafts.create_draft(unit, signed_in_email(user), call_id=call)
    except DomainError as exc:
        calls = run(request, drafts.open_calls)
        return page(request, "appels.html", {"calls": calls, "error": str(exc)},
                    status_code=400)
    return RedirectResponse(request.url_for("draft_form", draft_id=str(draft_id)),
                            status_code=303)


# --- the draft's page -----------------------------------------------------------------------

def _rows(values: dict[str, Any], group: str) -> list[int]:
    """The row numbers of a repeated group present in the form's values, in order."""
    found = {int(m["index"]) for name in values
             if (m := re.match(rf"{group}\[(?P<index>\d+)\]\.", name))}
    return sorted(found)


def _draft_page(request: Request, user: Principal | None, draft_id: int, *,
                values: dict[str, Any] | None = None, errors: dict[str, list[str]] | None = None,
                notice: str | None = None, problem: str | None = None,
                status_code: int = 200) -> HTMLResponse:
    email = signed_in_email(user)

    def read(unit: UnitOfWork) -> tuple[drafts.DraftView, list[attachments.AttachmentView]]:
        return (drafts.load_draft(unit, draft_id, email),
                attachments.draft_attachments(unit, draft_id, email))

    draft, files = run(request, read)
    shown = values if values is not None else forms.document_to_form(draft["document"])
    return page(request, "brouillon.html", {
        "draft": draft, "files": files, "v": shown, "errors": errors or {},
        "rows": {g: _rows(shown, g) for g in forms.REPEATED},
        "is_lead": draft["lead_email"] == email.lower(), "notice": notice, "problem": problem,
        "departments": forms.department_choices(), "objectives": OBJECTIVE_LABELS,
        "innovations": INNOVATION_LABELS, "org_kinds": ORG_KINDS, "kinds": KIND_LABELS,
        "labels": FIELD_LABELS, "max_bytes": attachments.UploadStore.from_settings().max_bytes,
    }, status_code=status_code)


@router.get("/brouillons/{draft_id}", name="draft_form")
def draft_form(request: Request, draft_id: str,
               user: Principal | None = Guard("draft_form")) -> HTMLResponse:
    done = DONE.get(request.query_params.get("fait", ""))
    return _draft_page(request, user, _number(draft_id), notice=done)


def _done(request: Request, draft_id: int, key: str) -> Response:
    target = request.url_for("draft_form", draft_id=str(draft_id))
    return RedirectResponse(f"{target}?fait={key}", status_code=303)


def _posted_values(form: FormData, action: str) -> dict[str, Any]:
    """The form's fields as the page shows them back, with a row added or removed."""
    values: dict[str, Any] = {}
    for name, value in form.multi_items():
        if not isinstance(value, str) or name in ("csrf_token", "action"):
            continue
        if name in forms.MULTI_FIELDS:
            values.setdefault(name, []).append(value)
        else:
            values[name] = value
    match = _ACTION.fullmatch(action)
    if match and match["verb"] == "remove" and match["row"] is not None:
        prefix = f"{match['group']}[{match['row']}]."
        values = {k: v for k, v in values.items() if not k.startswith(prefix)}
    elif match and match["verb"] == "add":
        rows = _rows(values, match["group"])
        if len(rows) < forms.MAX_ROWS:
            first = forms.REPEATED[match["group"]][0]
            values[f"{match['group']}[{rows[-1] + 1 if rows else 0}].{first}"] = ""
    return values


@router.post("/brouillons/{draft_id}", name="draft_save", dependencies=CSRF)
async def draft_save(request: Request, draft_id: str,
                     user: Principal | None = Guard("draft_save")) -> Response:
    number, email = _number(draft_id), signed_in_email(user)
    form = await request.form()
    action = _str(form, "action", 40) or "save"
    values = _posted_values(form, action)
    result, errors = forms.validate_form(list(_pairs(values)))
    try:
        run(request, lambda unit: drafts.save_draft(unit, number, email, result.document))
    except DomainError as exc:
        return _draft_page(request, user, number, values=values, errors=errors,
                           problem=str(exc), status_code=400)
    if action != "submit":
        count = sum(len(m) for m in errors.values())
        notice = "Brouillon enregistré." + (
            f" {count} point{'s' if count > 1 else ''} à corriger avant le dépôt." if count
            else " Il est complet : vous pouvez le déposer.")
        return _draft_page(request, user, number, values=values, errors=errors, notice=notice)
    if errors:
        return _draft_page(request, user, number, values=values, errors=errors,
                           problem="Le dossier ne peut pas encore être déposé : corrigez les "
                                   "points signalés.", status_code=400)
    return _submit(request, user, number, values)


def _pairs(values: dict[str, Any]) -> list[tuple[str, str]]:
    return [(k, x) for k, v in values.items() for x in (v if isinstance(v, list) else [v])]


def _submit(request: Request, user: Principal | None, number: int,
            values: dict[str, Any]) -> Response:
    state = request.app.state
    session = getattr(request.state, "session", None)
    actor = f"web:{session.principal.email}" if session else "web"
    runner = Runner(state.engine, Context.from_settings(actor, clock=state.clock))
    try:
        outcome = submission.submit(runner, number, signed_in_email(user))
    except NotFound:
        raise HTTPException(404) from None
    except DomainError as exc:
        return _draft_page(request, user, number, values=values, problem=str(exc),
                           status_code=400)
    if outcome["reference"] is None:
        errors: dict[str, list[str]] = {}
        for error in outcome["errors"]:
            errors.setdefault(error["field"], []).append(error["message"])
        return _draft_page(request, user, number, values=values, errors=errors,
                           problem="Le dossier a été refusé : corrigez les points signalés.",
                           status_code=400)
    target = request.url_for("application_view", reference=outcome["reference"])
    return RedirectResponse(f"{target}?depose=1", status_code=303)


# --- co-applicants --------------------------------------------------------------------------

@router.post("/brouillons/{draft_id}/co-porteurs", name="draft_invite", dependencies=CSRF)
async def draft_invite(request: Request, draft_id: str,
                       user: Principal | None = Guard("draft_invite")) -> Response:
    number, email = _number(draft_id), signed_in_email(user)
    invitee = _str(await request.form(), "email", 320)
    public_url = get_settings().public_url
    try:
        run(request, lambda unit: drafts.invite(unit, number, email, invitee,
                                                 public_url=public_url))
    except DomainError as exc:
        return _draft_page(request, user, number, problem=str(exc), status_code=400)
    return _done(request, number, "invitation")


@router.post("/brouillons/{draft_id}/co-porteurs/retrait", name="draft_uninvite",
             dependencies=CSRF)
async def draft_uninvite(request: Request, draft_id: str,
                         user: Principal | None = Guard("draft_uninvite")) -> Response:
    number, email = _number(draft_id), signed_in_email(user)
    member = _str(await request.form(), "email", 320)
    run(request, lambda unit: drafts.remove_member(unit, number, email, member))
    return _done(request, number, "co-porteur-retire")


# --- attachments ----------------------------------------------------------------------------

BODY_MARGIN = 64 * 1024  # the multipart envelope and the form's other fields


def limit_upload(request: Request) -> None:
    """Refuse a body larger than a file may be before anything stores it (the CSRF check parses
    the form, spooling the file): at once when Content-Length announces it, else as soon as
    the bytes read pass the limit (a chunked body is cut there, not drained)."""
    announced = request.headers.get("content-length", "")
    limit = attachments.UploadStore.from_settings().max_bytes + BODY_MARGIN
    if announced.isdigit() and int(announced) > limit:
        raise HTTPException(413)
    receive, seen = request.receive, 0

    async def bounded() -> Message:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise HTTPException(413)
        return message

    request._receive = bounded  # the Request the form is read from (the same for every dependency)


@router.post("/brouillons/{draft_id}/pieces", name="attachment_add",
             dependencies=[Depends(limit_upload), *CSRF])
async def attachment_add(request: Request, draft_id: str,
                         user: Principal | None = Guard("attachment_add")) -> Response:
    number, email = _number(draft_id), signed_in_email(user)
    form = await request.form()
    upload, kind = form.get("fichier"), _str(form, "kind", 50)
    if not isinstance(upload, UploadFile) or not upload.filename:
        return _draft_page(request, user, number, problem="Choisissez un fichier à joindre.",
                           status_code=400)
    store = attachments.UploadStore.from_settings()
    try:
        run(request, lambda unit: attachments.add_attachment(
            unit, store, number, email, kind, upload.filename or "", upload.file))
    except DomainError as exc:
        return _draft_page(request, user, number, problem=str(exc), status_code=400)
    finally:
        await upload.close()
    return _done(request, number, "piece")


@router.post("/brouillons/{draft_id}/pieces/{attachment_id}/retrait", name="attachment_remove",
             dependencies=CSRF)
def attachment_remove(request: Request, draft_id: str, attachment_id: str,
                      user: Principal | None = Guard("attachment_remove")) -> Response:
    number, piece, email = _number(draft_id), _number(attachment_id), signed_in_email(user)
    try:
        run(request, lambda unit: attachments.remove_attachment(unit, number, email, piece))
    except DomainError as exc:
        return _draft_page(request, user, number, problem=str(exc), status_code=400)
    return _done(request, number, "piece-retiree")


@router.get("/pieces/{attachment_id}", name="attachment_download")
def attachment_download(request: Request, attachment_id: str,
                        user: Principal | None = Guard("attachment_download")) -> Response:
    piece, email = _number(attachment_id), signed_in_email(user)
    store = attachments.UploadStore.from_settings()
    described, path = run(request, lambda unit: attachments.open_attachment(
        unit, store, piece, email))
    # always a download, of the type read from its bytes (nosniff: every response has it)
    return FileResponse(path, media_type=described["media_type"],
                        filename=described["filename"], content_disposition_type="attachment",
                        headers={"Cache-Control": "private, no-store"})


# --- applications ---------------------------------------------------------------------------

@router.get("/dossiers/{reference}", name="application_view")
def application_view(request: Request, reference: str,
                     user: Principal | None = Guard("application_view")) -> HTMLResponse:
    return _application_page(request, user, reference[:40])


def _application_page(request: Request, user: Principal | None, reference: str, *,
                      error: str | None = None, reason: str = "",
                      status_code: int = 200) -> HTMLResponse:
    email = signed_in_email(user)
    view = run(request, lambda unit: applicant.application_page(unit, reference, email))
    return page(request, "dossier.html", {
        "app": view, "error": error, "reason": reason, "kinds": KIND_LABELS,
        "submitted": request.query_params.get("depose") == "1",
        "withdrawn": request.query_params.get("retire") == "1"}, status_code=status_code)


@router.post("/dossiers/{reference}/retrait", name="application_withdraw", dependencies=CSRF)
async def application_withdraw(request: Request, reference: str,
                               user: Principal | None = Guard("application_withdraw")
                               ) -> Response:
    email, reference = signed_in_email(user), reference[:40]
    reason = _str(await request.form(), "reason", applicant.MAX_REASON + 1)
    try:
        run(request, lambda unit: applicant.withdraw(unit, reference, email, reason))
    except DomainError as exc:
        return _application_page(request, user, reference, error=str(exc), reason=reason,
                                 status_code=400)
    target = request.url_for("application_view", reference=reference.strip().upper())
    return RedirectResponse(f"{target}?retire=1", status_code=303)


def my_lists(request: Request, user: Principal) -> dict[str, Any]:
    """What « Mon espace » lists: drafts and applications, with their status labels."""
    def read(unit: UnitOfWork) -> dict[str, Any]:
        return {"drafts": drafts.list_drafts(unit, user.email),
                "applications": applicant.my_applications(unit, user.email),
                "calls": drafts.open_calls(unit)}
    return run(request, read)


def when(value: str | None) -> str:
    """An ISO timestamp or date shown in the fund's time zone, the French way."""
    if not value:
        return "—"
    from zoneinfo import ZoneInfo

    parsed = dt.datetime.fromisoformat(value) if "T" in value else None
    if parsed is None:
        day = dt.date.fromisoformat(value)
        return day.strftime("%d/%m/%Y")
    local = parsed.astimezone(ZoneInfo(get_settings().timezone))
    return local.strftime("%d/%m/%Y à %H:%M")


def amount(value: str | None) -> str:
    from decimal import Decimal

    return "—" if value is None else forms.format_amount(Decimal(value)) + " €"


__all__ = ["amount", "my_lists", "router", "status_label", "when"]
