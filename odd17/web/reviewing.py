"""The reviewer's and the committee's workspaces (issue 14).

``/evaluation``: a reviewer's assigned applications and the scoring form (saved as a draft,
then submitted, final afterwards) through ``services.reviewing``, which answers NotFound for
an application they are not designated for or are recused from (404 here, as for a missing
one). ``/comite``: the committee's session (``services.sessions_committee``): the members
ticked present travel in the query string (a GET form: nothing changes until a decision is
posted), each decision is posted on its own and taken by the session's use case; the minutes
(``services.minutes``) as a printable page and as a PDF."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from models import DomainError, NotFound
from odd17.services import minutes, reviewing, sessions_committee
from odd17.services.access import Principal
from odd17.uow import Context, Runner, UnitOfWork
from odd17.web.deps import Guard, check_csrf, run, signed_in_email
from odd17.web.templating import page
from rules.money import parse_amount

router = APIRouter()
CSRF = [Depends(check_csrf)]
DONE = {"enregistre": "Évaluation enregistrée : vous pourrez la terminer plus tard.",
        "rendue": "Évaluation rendue. Elle est définitive."}
OUTCOMES = {"approve": "Accorder", "reject": "Refuser", "defer": "Reporter"}
APPLIED = {"approve": "accordé", "reject": "refusé", "defer": "reporté"}


def score(text: str | None) -> str:
    """A score of the read models (three decimals, a dot) for people: the French comma, not
    rounded again (rounding a rounded value twice could differ from the exact one's)."""
    return "—" if text is None else text.replace(".", ",")




def _str(form: FormData, name: str, limit: int = 4000) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


# --- the reviewer ---------------------------------------------------------------------------

@router.get("/evaluation", name="review_list")
def review_list(request: Request, user: Principal | None = Guard("review_list")) -> HTMLResponse:
    email = signed_in_email(user)
    rows = run(request, lambda u: reviewing.assigned_to(u, email))
    return page(request, "evaluation_liste.html", {"rows": rows})


def _review_page(request: Request, reference: str, email: str, *,
                 errors: list[str] | None = None, posted: dict[str, Any] | None = None,
                 status_code: int = 200) -> HTMLResponse:
    form = run(request, lambda u: reviewing.review_form(u, reference, email))
    if posted is not None and form["state"] != "submitted":  # what was typed, shown back
        for criterion in form["criteria"]:
            criterion["value"] = posted["scores"].get(criterion["name"])
        form["comment"] = posted["comment"]
    done = DONE.get(request.query_params.get("fait", ""))
    return page(request, "evaluation_dossier.html", {
        "f": form, "score": score, "errors": errors or [], "notice": None if errors else done},
        status_code=status_code)


@router.get("/evaluation/{reference}", name="review_form")
def review_form(request: Request, reference: str,
                user: Principal | None = Guard("review_form")) -> HTMLResponse:
    return _review_page(request, reference[:40], signed_in_email(user))


def _scores(form: FormData, names: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The notes posted (``note-<criterion>``): a whole number, or none yet."""
    scores: dict[str, Any] = {}
    problems = []
    for name in names:
        text = _str(form, f"note-{name}", 10).strip()
        if not text:
            scores[name] = None
        elif text.isdigit():
            scores[name] = int(text)
        else:
            scores[name] = None
            problems.append(f"note de « {name} » : un nombre entier est attendu")
    return scores, problems


@router.post("/evaluation/{reference}", name="review_save", dependencies=CSRF)
async def review_save(request: Request, reference: str,
                      user: Principal | None = Guard("review_save")) -> Response:
    """« Enregistrer » saves the draft; « Rendre l'évaluation » saves it then submits it (two
    transactions: a refused submission keeps what was typed, saved)."""
    email, reference = signed_in_email(user), reference[:40]
    form = await request.form()
    names = [c["name"] for c in run(
        request, lambda u: reviewing.review_form(u, reference, email))["criteria"]]
    scores, problems = _scores(form, names)
    comment = _str(form, "comment")
    posted = {"scores": scores, "comment": comment}
    if problems:
        return _review_page(request, reference, email, errors=problems, posted=posted,
                            status_code=400)
    try:
        run(request, lambda u: reviewing.save_draft(u, reference, email, scores, comment))
        if _str(form, "action") == "submit":
            run(request, lambda u: reviewing.submit(u, reference, email))
    except DomainError as exc:
        return _review_page(request, reference, email, errors=[str(exc)], posted=posted,
                            status_code=400)
    key = "rendue" if _str(form, "action") == "submit" else "enregistre"
    target = request.url_for("review_form", reference=reference)
    return RedirectResponse(f"{target}?fait={key}", status_code=303)


# --- the committee --------------------------------------------------------------------------

def _present(values: list[str]) -> list[str]:
    return [v[:320] for v in values[:200] if v.strip()]


def _session_page(request: Request, present: list[str], *, result: dict[str, Any] | None = None,
                  problem: str | None = None, posted: dict[str, str] | None = None,
                  status_code: int = 200) -> HTMLResponse:
    """The session for the members ``present``; ``result``: the decision just taken (or
    refused because the envelope is short), ``problem``: a decision refused, beside
    ``posted`` (its form's values)."""
    try:
        view = run(request, lambda u: sessions_committee.session_view(u, present))
    except DomainError as exc:  # an address that is not a member: none ticked
        view = run(request, lambda u: sessions_committee.session_view(u, []))
        problem, status_code = str(exc), 400
    return page(request, "comite_seance.html", {
        "s": view, "result": result, "problem": problem, "posted": posted or {},
        "outcomes": OUTCOMES, "applied": APPLIED, "score": score,
        "today": Context.from_settings("web", clock=request.app.state.clock).today().isoformat()},
        status_code=status_code)


@router.get("/comite", name="committee_session")
def committee_session(request: Request,
                      user: Principal | None = Guard("committee_session")) -> HTMLResponse:
    present = _present(request.query_params.getlist("present"))
    ref = request.query_params.get("fait", "")[:40]
    outcome = request.query_params.get("decision", "")
    result = {"reference": ref, "outcome": outcome} if ref and outcome in APPLIED else None
    return _session_page(request, present, result=result)


@router.post("/comite/decisions", name="committee_decide", dependencies=CSRF)
async def committee_decide(request: Request,
                           user: Principal | None = Guard("committee_decide")) -> Response:
    form = await request.form()
    present = _present([v for v in form.getlist("present") if isinstance(v, str)])
    reference, outcome = _str(form, "reference", 40), _str(form, "outcome", 20)
    motif, amount_text = _str(form, "motif"), _str(form, "amount", 40).strip()
    posted = {"reference": reference, "outcome": outcome, "motif": motif,
              "amount": amount_text}
    state = request.app.state
    runner = Runner(state.engine, Context.from_settings(f"web:{signed_in_email(user)}",
                                                        clock=state.clock))
    try:
        if outcome not in OUTCOMES:
            raise DomainError("choisissez une décision : accorder, refuser ou reporter")
        amount = _amount(amount_text) if outcome == "approve" else None
        done = sessions_committee.decide(runner, reference, outcome, present=present,
                                         amount=amount, motif=motif)
    except NotFound:
        raise HTTPException(404) from None
    except (DomainError, ValueError) as exc:
        return _session_page(request, present, problem=f"{reference} : {exc}", posted=posted,
                             status_code=400)
    if done["result"] == "envelope_short":
        return _session_page(request, present, result=dict(done), status_code=409)
    query = urlencode([("present", p) for p in present]
                      + [("fait", done["reference"]), ("decision", outcome)])
    return RedirectResponse(f"{request.url_for('committee_session')}?{query}", status_code=303)


def _amount(text: str) -> Decimal | None:
    """The amount granted, French or plain (``70 000,50``); empty: the amount requested."""
    return parse_amount(text) if text else None


def _day(request: Request) -> dt.date:
    text = request.query_params.get("date", "")
    if not text:
        return Context.from_settings("web", clock=request.app.state.clock).today()
    try:
        return dt.datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        raise _BadDate(text[:40]) from None


class _BadDate(Exception):
    def __init__(self, text: str) -> None:
        self.text = text


def _bad_date(request: Request, exc: _BadDate) -> HTMLResponse:
    return page(request, "message.html", {
        "title": "Date invalide",
        "text": f"Date de séance invalide « {exc.text} » : attendu AAAA-MM-JJ, par ex. "
                "2026-12-03."}, status_code=400)


@router.get("/comite/proces-verbal", name="committee_minutes")
def committee_minutes(request: Request,
                      user: Principal | None = Guard("committee_minutes")) -> Response:
    try:
        day = _day(request)
    except _BadDate as exc:
        return _bad_date(request, exc)
    found = run(request, lambda u: minutes.minutes(u, day))
    return page(request, "comite_proces_verbal.html", {"m": found})


@router.get("/comite/proces-verbal.pdf", name="committee_minutes_pdf")
def committee_minutes_pdf(request: Request,
                          user: Principal | None = Guard("committee_minutes_pdf")) -> Response:
    try:
        day = _day(request)
    except _BadDate as exc:
        return _bad_date(request, exc)

    def build(unit: UnitOfWork) -> bytes:
        return minutes.minutes_pdf(minutes.minutes(unit, day), created=unit.now)

    try:
        data = run(request, build)
    except DomainError as exc:  # the font is missing: said, not a traceback
        return page(request, "message.html", {"title": "Procès-verbal indisponible",
                                              "text": str(exc)}, status_code=503)
    name = f"proces-verbal-{day.isoformat()}.pdf"
    return Response(data, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
