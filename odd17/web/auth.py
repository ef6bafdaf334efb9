"""The sign-in pages: ask for a link, confirm it (a POST: mail scanners that open links do not
use them up), the TOTP code of staff, sign out (here or everywhere), « mon espace »."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from models import DomainError
from odd17.services import signin
from odd17.services.access import ROLE_LABELS, Principal, may_use_applicant_space
from odd17.web.applicant import my_lists
from odd17.web.deps import Guard, check_csrf, load_session, uow
from odd17.web.security import SESSION_COOKIE
from odd17.web.templating import page

router = APIRouter()
CSRF = [Depends(check_csrf)]


def _client(request: Request) -> str:
    return request.client.host if request.client else "inconnu"


@router.get("/connexion", name="sign_in_form")
def sign_in_form(request: Request, _: Principal | None = Guard("sign_in_form")) -> HTMLResponse:
    return page(request, "connexion.html", {"email": "", "error": None})


@router.post("/connexion", name="sign_in_request", dependencies=CSRF)
async def sign_in_request(request: Request,
                          _: Principal | None = Guard("sign_in_request")) -> HTMLResponse:
    email = str((await request.form()).get("email", ""))[:400]
    try:
        with uow(request) as unit:
            signin.request_sign_in(unit, request.app.state.policy, email, _client(request))
    except signin.RateLimited as exc:
        return page(request, "connexion.html", {"email": email, "error": str(exc)},
                    status_code=429)
    except DomainError as exc:  # the address itself is not valid
        return page(request, "connexion.html", {"email": email, "error": str(exc)},
                    status_code=400)
    # the same page whether the address is known or not
    return page(request, "connexion_envoyee.html", {})


@router.get("/connexion/code", name="totp_form")
def totp_form(request: Request, _: Principal | None = Guard("totp_form")) -> HTMLResponse:
    return page(request, "connexion_code.html", {"error": None})


@router.post("/connexion/code", name="totp_submit", dependencies=CSRF)
async def totp_submit(request: Request,
                      _: Principal | None = Guard("totp_submit")) -> Response:
    code = str((await request.form()).get("code", ""))[:20]
    state = load_session(request)
    assert state is not None  # the guard let a pending session only
    try:
        with uow(request) as unit:
            outcome = signin.confirm_totp(unit, request.app.state.policy, state, code)
    except DomainError as exc:  # the secret cannot be read (no key, or another one)
        return page(request, "connexion_code.html", {"error": str(exc)}, status_code=400)
    if outcome is signin.TotpOutcome.confirmed:
        return RedirectResponse(request.url_for("my_space"), status_code=303)
    if outcome is signin.TotpOutcome.locked:
        response = page(request, "message.html", {
            "title": "Connexion annulée",
            "text": "Trop de codes erronés : cette connexion est annulée. Demandez un nouveau "
                    "lien de connexion."}, status_code=403)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response
    return page(request, "connexion_code.html",
                {"error": "Code incorrect ou déjà utilisé : saisissez le code à 6 chiffres "
                          "affiché maintenant par votre application."}, status_code=400)


@router.get("/connexion/{token}", name="sign_in_link")
def sign_in_link(request: Request, token: str,
                 _: Principal | None = Guard("sign_in_link")) -> HTMLResponse:
    with uow(request) as unit:
        usable = signin.link_is_usable(unit, token)
    if not usable:
        return page(request, "message.html", {"title": "Lien non valable",
                                              "text": signin.INVALID_LINK,
                                              "retry": True}, status_code=410)
    return page(request, "connexion_confirmer.html", {"token": token})


@router.post("/connexion/{token}", name="sign_in_confirm", dependencies=CSRF)
def sign_in_confirm(request: Request, token: str,
                    _: Principal | None = Guard("sign_in_confirm")) -> Response:
    policy = request.app.state.policy
    try:
        with uow(request) as unit:
            signin.sign_out(unit, request.cookies.get(SESSION_COOKIE))  # no session fixation
            new = signin.consume_link(unit, policy, token)
    except DomainError as exc:
        return page(request, "message.html", {"title": "Connexion impossible", "text": str(exc),
                                              "retry": True}, status_code=410)
    target = "totp_form" if new.totp_pending else "my_space"
    response = RedirectResponse(request.url_for(target), status_code=303)
    response.set_cookie(SESSION_COOKIE, new.cookie, httponly=True, samesite="lax",
                        secure=request.app.state.secure, path="/",
                        max_age=int(policy.session_lifetime.total_seconds()))
    return response


@router.post("/deconnexion", name="sign_out", dependencies=CSRF)
def sign_out(request: Request, _: Principal | None = Guard("sign_out")) -> Response:
    with uow(request) as unit:
        signin.sign_out(unit, request.cookies.get(SESSION_COOKIE))
    return _signed_out(request, "Vous êtes déconnecté.")


@router.post("/deconnexion/partout", name="sign_out_everywhere", dependencies=CSRF)
def sign_out_everywhere(request: Request,
                        user: Principal | None = Guard("sign_out_everywhere")) -> Response:
    assert user is not None
    with uow(request) as unit:
        count = signin.sign_out_everywhere(unit, user.email)
    return _signed_out(request, f"Vous êtes déconnecté de tous vos appareils ({count} session"
                                f"{'s' if count > 1 else ''} fermée{'s' if count > 1 else ''}).")


def _signed_out(request: Request, text: str) -> Response:
    request.state.session = None  # the page that follows is an anonymous one
    response = page(request, "message.html", {"title": "Déconnexion", "text": text})
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/mon-espace", name="my_space")
def my_space(request: Request, user: Principal | None = Guard("my_space")) -> HTMLResponse:
    assert user is not None
    roles: list[Any] = sorted(ROLE_LABELS[r] for r in user.roles)
    lists = my_lists(request, user) if may_use_applicant_space(user) else {}
    return page(request, "mon_espace.html", {"user": user, "roles": roles, **lists})
