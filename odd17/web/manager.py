"""The fund manager's workspace (issue 14), under ``/gestion``: the board (counts, filters,
search, pages: services/board.py), an application's page for staff (queries.application_detail,
comments.history, choosing.assignable_reviewers) and its actions: an internal comment,
automatic or chosen reviewers, a re-evaluation of eligibility previewed first
(eligibility.preview) then done (eligibility.evaluate_batch). Every action is a POST with its
CSRF token, answered by a redirect (Post/Redirect/Get) or, when refused, the page with the
French reason. The route's rule (policy.MANAGER_SPACE) checks the role. « Exécutions »: the
last runs of odd17's Prefect flows (flows/runs.py) and a link to Prefect's UI."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from models import DomainError, Status
from models.lookup import application_by_reference
from odd17.services import (
    assignment,
    attachments,
    board,
    choosing,
    comments,
    eligibility,
    queries,
)
from odd17.services.access import Principal
from odd17.uow import UnitOfWork
from odd17.web.applicant import KIND_LABELS
from odd17.web.deps import Guard, check_csrf, run
from odd17.web.templating import page
from rules.labels import INNOVATION_LABELS, OBJECTIVE_LABELS, status_label

router = APIRouter(prefix="/gestion")
CSRF = [Depends(check_csrf)]
# ``?fait=<key>``: what the application's page says after an action redirected to it
DONE = {"commentaire": "Commentaire interne enregistré.",
        "designes": "Évaluateurs désignés : le dossier est en instruction.",
        "reevaluation": "Éligibilité réévaluée."}
BOARD_FIELDS = ("call", "objective", "region", "score_min", "score_max", "search", "page",
                "per_page")
STATUSES = [(s.value, status_label(s.value)) for s in Status]



def _ref(reference: str) -> str:
    return reference.strip().upper()[:40]


def _str(form: FormData, name: str, limit: int) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


# --- the board ------------------------------------------------------------------------------

def _raw_query(request: Request) -> dict[str, Any]:
    """The board's GET form, blank fields left out (« any »)."""
    params = request.query_params
    raw: dict[str, Any] = {k: params[k][:200] for k in BOARD_FIELDS if params.get(k, "").strip()}
    statuses = [s for s in params.getlist("status") if s]
    if statuses:
        raw["status"] = statuses
    return raw


@router.get("", name="manager_board")
def manager_board(request: Request, _: Principal | None = Guard("manager_board")) -> Response:
    raw = _raw_query(request)
    error, result = None, None
    try:
        query = board.parse_query(raw)
    except DomainError as exc:
        error, query = str(exc), board.BoardQuery()
    result = run(request, lambda unit: board.board(unit, query))
    # the links to the other pages keep every filter
    kept = [(k, v) for k, v in request.query_params.multi_items() if k != "page" and v]
    return page(request, "gestion_tableau.html", {
        "board": result, "raw": raw, "error": error, "kept": kept, "statuses": STATUSES,
        "objectives": OBJECTIVE_LABELS, "chosen": set(raw.get("status", []))},
        status_code=400 if error else 200)


# --- an application -------------------------------------------------------------------------

def _application_page(request: Request, reference: str, *, problem: str | None = None,
                      comment: str = "", status_code: int = 200) -> HTMLResponse:
    def read(unit: UnitOfWork) -> dict[str, Any]:
        detail = queries.application_detail(unit, reference)
        return {"app": detail, "history": comments.history(unit, reference),
                "files": attachments.attachments_of(unit, reference),
                "candidates": choosing.assignable_reviewers(unit, reference)
                if detail["status"] == Status.eligible else [],
                "needed": unit.config.review.reviewers_per_application}

    found = run(request, read)
    done = DONE.get(request.query_params.get("fait", ""))
    return page(request, "gestion_dossier.html", {
        **found, "problem": problem, "comment": comment, "notice": done,
        "status_label": status_label(found["app"]["status"]),
        "objectives": OBJECTIVE_LABELS, "innovations": INNOVATION_LABELS, "kinds": KIND_LABELS,
        "max_comment": comments.MAX_LENGTH}, status_code=status_code)


@router.get("/dossiers/{reference}", name="manager_application")
def manager_application(request: Request, reference: str,
                        _: Principal | None = Guard("manager_application")) -> HTMLResponse:
    return _application_page(request, _ref(reference))


@router.get("/dossiers/{reference}/pieces/{attachment_id}", name="manager_attachment")
def manager_attachment(request: Request, reference: str, attachment_id: str,
                       _: Principal | None = Guard("manager_attachment")) -> Response:
    if not attachment_id.isdigit() or len(attachment_id) > 12:
        raise HTTPException(404)
    ref, store = _ref(reference), attachments.UploadStore.from_settings()
    described, path = run(request, lambda unit: attachments.open_for_staff(
        unit, store, ref, int(attachment_id)))
    # always a download, of the type read from its bytes (as the applicant's route)
    return FileResponse(path, media_type=described["media_type"],
                        filename=described["filename"], content_disposition_type="attachment",
                        headers={"Cache-Control": "private, no-store"})


def _back(request: Request, reference: str, query: str) -> Response:
    target = request.url_for("manager_application", reference=reference)
    return RedirectResponse(f"{target}?{query}", status_code=303)


@router.post("/dossiers/{reference}/commentaires", name="manager_comment", dependencies=CSRF)
async def manager_comment(request: Request, reference: str,
                          _: Principal | None = Guard("manager_comment")) -> Response:
    ref = _ref(reference)
    body = _str(await request.form(), "body", comments.MAX_LENGTH + 1)
    try:
        run(request, lambda unit: comments.add_comment(unit, ref, body))
    except DomainError as exc:
        return _application_page(request, ref, problem=str(exc), comment=body,
                                 status_code=400)
    return _back(request, ref, "fait=commentaire")


@router.post("/dossiers/{reference}/attribution", name="manager_assign_auto",
             dependencies=CSRF)
def manager_assign_auto(request: Request, reference: str,
                        _: Principal | None = Guard("manager_assign_auto")) -> Response:
    ref = _ref(reference)

    def assign_one(unit: UnitOfWork) -> assignment.Assignment:
        application_by_reference(unit.session, ref)  # NotFound for an unknown reference
        return assignment.assign(unit, [ref])

    result = run(request, assign_one)
    if result.assigned.get(ref):
        return _back(request, ref, "fait=designes")
    if ref in result.short:
        problem = (f"Pas assez d'évaluateurs disponibles sans conflit d'intérêts : "
                   f"{result.short[ref]} ; rien n'a été enregistré.")
    else:
        problem = "Ce dossier n'est pas éligible : on ne lui désigne pas d'évaluateurs."
    return _application_page(request, ref, problem=problem, status_code=400)


@router.post("/dossiers/{reference}/evaluateurs", name="manager_assign_chosen",
             dependencies=CSRF)
async def manager_assign_chosen(request: Request, reference: str,
                                _: Principal | None = Guard("manager_assign_chosen")
                                ) -> Response:
    ref = _ref(reference)
    chosen = [e[:320] for e in (await request.form()).getlist("reviewer")
              if isinstance(e, str)][:50]
    try:
        run(request, lambda unit: choosing.assign_chosen(unit, ref, chosen))
    except DomainError as exc:
        return _application_page(request, ref, problem=str(exc), status_code=400)
    return _back(request, ref, "fait=designes")


@router.get("/dossiers/{reference}/reevaluation", name="manager_reevaluate_preview")
def manager_reevaluate_preview(request: Request, reference: str,
                               _: Principal | None = Guard("manager_reevaluate_preview")
                               ) -> HTMLResponse:
    ref = _ref(reference)

    def read(unit: UnitOfWork) -> tuple[Any, eligibility.Verdict | None]:
        return queries.application_detail(unit, ref), eligibility.preview(unit, ref)

    detail, verdict = run(request, read)
    return page(request, "gestion_reevaluation.html", {
        "app": detail, "verdict": verdict, "status_label": status_label,
        "changes": verdict is not None and verdict.status != verdict.previous})


@router.post("/dossiers/{reference}/reevaluation", name="manager_reevaluate",
             dependencies=CSRF)
def manager_reevaluate(request: Request, reference: str,
                       _: Principal | None = Guard("manager_reevaluate")) -> Response:
    ref = _ref(reference)

    def reevaluate(unit: UnitOfWork) -> list[eligibility.Verdict]:
        app_id = application_by_reference(unit.session, ref).id
        return eligibility.evaluate_batch(unit, [app_id], reevaluate=True)

    try:
        verdicts = run(request, reevaluate)
    except DomainError as exc:  # ConcurrentChange: moved meanwhile
        return _application_page(request, ref, problem=str(exc), status_code=409)
    if not verdicts:
        return _application_page(
            request, ref, status_code=400,
            problem="Ce dossier est en instruction ou au-delà : son éligibilité ne se "
                    "réévalue plus.")
    return _back(request, ref, "fait=reevaluation")


# --- the runs of the Prefect deployments ----------------------------------------------------

def _duration(value: dt.timedelta | None) -> str:
    """« 0,4 s », « 2 min 05 s », « 1 h 03 min »."""
    if value is None:
        return "—"
    seconds = value.total_seconds()
    if seconds < 60:
        return f"{seconds:.1f} s".replace(".", ",")
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


@router.get("/executions", name="manager_runs")
def manager_runs(request: Request, _: Principal | None = Guard("manager_runs")) -> HTMLResponse:
    """The last runs of odd17's flows on the Prefect server (flows/runs.py: a short deadline,
    a French sentence when the server is down or slow), and a link to Prefect's UI."""
    from flows.runs import LIMIT, recent_runs  # Prefect is imported on this page only

    found = recent_runs()  # Prefect's times are the real clock's, not the domain's
    rows = [{"run": r, "expected": _iso(r.expected), "started": _iso(r.started),
             "ended": _iso(r.ended), "duration": _duration(r.duration)} for r in found.runs]
    return page(request, "gestion_executions.html", {
        "found": found, "rows": rows, "limit": LIMIT,
        "failed": sum(1 for r in found.runs if r.failed)})
