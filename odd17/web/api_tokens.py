"""« Mes jetons d'API » (issue 14), under ``/mon-espace/jetons``: the signed-in person's own
personal API tokens (services/tokens.py), each with its name, start, role, dates and state; a
form to create one, whose secret is shown once on the answer page (never in a URL, never
cached, never shown again: only its hash is kept); a button to revoke each. Open to the roles
that can hold a token (tokens.owner_role: staff, reviewers, committee members; policy
API_TOKENS); another person's token answers 404."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from models import DomainError
from odd17.services import tokens
from odd17.services.access import ROLE_LABELS, Principal, Role
from odd17.web.deps import Guard, check_csrf, run, signed_in_email
from odd17.web.templating import page

router = APIRouter(prefix="/mon-espace/jetons")
CSRF = [Depends(check_csrf)]
DONE = {"revoque": "Jeton révoqué : il ne permet plus aucun appel."}
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _name(form: FormData) -> str:
    value = form.get("name")
    return value[:tokens.NAME_MAX + 1] if isinstance(value, str) else ""


def _list_page(request: Request, email: str, *, problem: str | None = None, name: str = "",
               status_code: int = 200) -> HTMLResponse:
    rows = run(request, lambda unit: tokens.list_tokens(unit, email))
    return page(request, "jetons_liste.html", {
        "tokens": rows, "problem": problem, "name": name, "name_max": tokens.NAME_MAX,
        "notice": DONE.get(request.query_params.get("fait", "")),
        "scope_label": _scope_label}, status_code=status_code)


def _scope_label(scope: str) -> str:
    try:
        return ROLE_LABELS[Role(scope)]
    except ValueError:
        return scope


@router.get("", name="api_tokens")
def api_tokens(request: Request, user: Principal | None = Guard("api_tokens")) -> HTMLResponse:
    return _list_page(request, signed_in_email(user))


@router.post("", name="api_token_create", dependencies=CSRF)
async def api_token_create(request: Request,
                           user: Principal | None = Guard("api_token_create")) -> Response:
    email, name = signed_in_email(user), _name(await request.form())
    try:
        created = run(request, lambda unit: tokens.create(unit, email, name))
    except DomainError as exc:
        return _list_page(request, email, problem=str(exc), name=name, status_code=400)
    # the secret is on this page only: not in a redirect's URL, not in any cache
    answer = page(request, "jetons_cree.html", {
        "token": created["token"], "secret": created["secret"],
        "scope": _scope_label(created["token"]["scope"])})
    answer.headers.update(NO_STORE)
    return answer


@router.post("/{token_id}/revocation", name="api_token_revoke", dependencies=CSRF)
def api_token_revoke(request: Request, token_id: str,
                     user: Principal | None = Guard("api_token_revoke")) -> Response:
    if not token_id.isdigit() or len(token_id) > 12:
        raise HTTPException(404)
    email = signed_in_email(user)
    try:  # someone else's token: NotFound, the same 404 as a missing one
        run(request, lambda unit: tokens.revoke(unit, int(token_id), owner=email))
    except DomainError as exc:  # already revoked (in another tab)
        return _list_page(request, email, problem=str(exc), status_code=409)
    target = request.url_for("api_tokens").include_query_params(fait="revoque")
    return RedirectResponse(str(target), status_code=303)


__all__ = ["router"]
