"""The administrator's workspace (issue 14), under ``/admin``: the staff accounts (list, add,
disable, enable again, reset the TOTP secret) through the use cases of ``odd17 users``
(odd17/services/accounts.py), called with ``by``, the signed-in admin, so that they check
who acts and never leave the fund without an active admin. Reviewers and committee members
are shown read-only: ``odd17 reviewers`` manages them. The admin role is not a superset of the
others: this workspace gives access to nothing else. Every action is a POST with its CSRF
token, answered by a redirect (Post/Redirect/Get), or, when refused, the page with the French
reason; the new TOTP secret is shown once, on the answer to its POST, never stored by the
browser (``Cache-Control: no-store``). The route's rule (policy.ADMIN_SPACE) checks the
role."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from models import DomainError
from odd17.services import accounts, reviewers
from odd17.services.access import Principal
from odd17.uow import UnitOfWork
from odd17.web.deps import Guard, check_csrf, run, signed_in_email
from odd17.web.templating import page

router = APIRouter(prefix="/admin")
CSRF = [Depends(check_csrf)]
ROLES = [("manager", "chargé de mission"), ("finance", "responsable financier"),
         ("admin", "administrateur")]
ROLE_NAMES = dict(ROLES)
# ``?fait=<key>``: what the list says after an action redirected to it
DONE = {"cree": "Compte créé.", "modifie": "Compte mis à jour (rôle, réactivé).",
        "desactive": "Compte désactivé ; ses sessions sont fermées.",
        "reactive": "Compte réactivé.", "deja-actif": "Ce compte était déjà actif."}


def _str(form: FormData, name: str, limit: int) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


def _id(user_id: str) -> int:
    """An account's id from the path; anything else is the 404 of a missing account."""
    if not user_id.isdigit() or len(user_id) > 12:
        raise HTTPException(404)
    return int(user_id)


def _accounts_page(request: Request, user: Principal | None, *, problem: str | None = None,
                   values: dict[str, str] | None = None,
                   errors: dict[str, list[str]] | None = None,
                   status_code: int = 200) -> HTMLResponse:
    by = signed_in_email(user)

    def read(unit: UnitOfWork) -> dict[str, Any]:
        return {"users": accounts.list_users(unit, by=by),
                "reviewers": reviewers.list_reviewers(unit)}

    found = run(request, read)
    return page(request, "admin_comptes.html", {
        **found, "me": by, "roles": ROLES, "role_names": ROLE_NAMES, "problem": problem,
        "notice": DONE.get(request.query_params.get("fait", "")), "v": values or {},
        "errors": errors or {}}, status_code=status_code)


def _back(request: Request, done: str) -> Response:
    return RedirectResponse(f"{request.url_for('admin_accounts')}?fait={done}",
                            status_code=303)


@router.get("/comptes", name="admin_accounts")
def admin_accounts(request: Request,
                   user: Principal | None = Guard("admin_accounts")) -> HTMLResponse:
    return _accounts_page(request, user)


def _field_errors(email: str, role: str) -> dict[str, list[str]]:
    """The add form's mistakes, each beside its field (the use case's own parsers)."""
    errors: dict[str, list[str]] = {}
    for name, value, check, missing in (
            ("email", email, accounts.normalise_email, "indiquez l'adresse e-mail du compte"),
            ("role", role, accounts.parse_role, "choisissez un rôle")):
        if not value.strip():
            errors[name] = [missing]
            continue
        try:
            check(value)
        except DomainError as exc:
            errors[name] = [str(exc)]
    return errors


@router.post("/comptes", name="admin_account_add", dependencies=CSRF)
async def admin_account_add(request: Request,
                            user: Principal | None = Guard("admin_account_add")) -> Response:
    form = await request.form()
    email, role = _str(form, "email", 400), _str(form, "role", 20)
    values = {"email": email, "role": role}
    errors = _field_errors(email, role)
    if errors:
        return _accounts_page(request, user, values=values, errors=errors, status_code=400)
    by = signed_in_email(user)
    try:
        created = run(request, lambda unit: accounts.add_user(unit, email, role, by=by))
    except DomainError as exc:  # the rules on admins (their own role, the last one)
        return _accounts_page(request, user, problem=str(exc), values=values,
                              status_code=409)
    return _back(request, "cree" if created else "modifie")


def _switch(request: Request, user: Principal | None, user_id: str,
            change: Callable[[UnitOfWork, str, str], object],
            done: Callable[[object], str]) -> Response:
    """Disable or enable the account ``user_id`` through its use case (``change(unit, address,
    by)``), then back to the list with ``done(result)``; a refusal is shown on the list."""
    account, by = _id(user_id), signed_in_email(user)
    try:
        result = run(request, lambda unit: change(unit, accounts.account_email(unit, account), by))
    except DomainError as exc:
        return _accounts_page(request, user, problem=str(exc), status_code=409)
    return _back(request, done(result))


@router.post("/comptes/{user_id}/desactivation", name="admin_account_disable",
             dependencies=CSRF)
def admin_account_disable(request: Request, user_id: str,
                          user: Principal | None = Guard("admin_account_disable")) -> Response:
    return _switch(request, user, user_id,
                   lambda unit, address, by: accounts.disable_user(unit, address, by=by),
                   lambda _: "desactive")


@router.post("/comptes/{user_id}/reactivation", name="admin_account_enable",
             dependencies=CSRF)
def admin_account_enable(request: Request, user_id: str,
                         user: Principal | None = Guard("admin_account_enable")) -> Response:
    return _switch(request, user, user_id,
                   lambda unit, address, by: accounts.enable_user(unit, address, by=by),
                   lambda changed: "reactive" if changed else "deja-actif")


@router.post("/comptes/{user_id}/totp", name="admin_account_totp", dependencies=CSRF)
def admin_account_totp(request: Request, user_id: str,
                       user: Principal | None = Guard("admin_account_totp")) -> Response:
    account, by = _id(user_id), signed_in_email(user)

    def reset(unit: UnitOfWork) -> tuple[str, str, str]:
        address = accounts.account_email(unit, account)
        return (address, *accounts.enrol_totp(
            unit, address, request.app.state.policy.secret_key, by=by))

    try:
        address, secret, uri = run(request, reset)
    except DomainError as exc:
        return _accounts_page(request, user, problem=str(exc), status_code=409)
    answer = page(request, "admin_totp.html", {"address": address, "secret": secret,
                                               "uri": uri})
    answer.headers["Cache-Control"] = "no-store"
    return answer
