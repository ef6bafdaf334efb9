"""The application factory: ``create_app()`` builds the FastAPI app (``odd17 web`` serves it)."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException

from odd17.runtime import utcnow
from odd17.services.access import Principal
from odd17.services.signin import AccountPolicy
from odd17.settings import Settings, get_settings
from odd17.web.deps import Forbidden, Guard, SignInRequired
from odd17.web.security import CsrfRefused, is_https, security_middleware
from odd17.web.templating import HERE, page, templates

__all__ = ["HERE", "create_app", "templates"]

_STATUS_TEXT = {404: ("Page introuvable", "Cette page n'existe pas, ou vous n'y avez pas accès."),
                405: ("Action impossible", "Cette adresse ne s'utilise pas ainsi."),
                400: ("Demande invalide", "La demande n'a pas pu être lue."),
                413: ("Fichier trop volumineux",
                      "Ce fichier dépasse la taille autorisée pour une pièce jointe : revenez "
                      "au brouillon et joignez un fichier plus petit.")}


def account_policy(settings: Settings) -> AccountPolicy:
    return AccountPolicy(
        base_url=settings.public_url,
        session_lifetime=dt.timedelta(hours=settings.session_lifetime_hours),
        max_per_address=settings.sign_in_max_per_address,
        max_per_client=settings.sign_in_max_per_client,
        window=dt.timedelta(minutes=settings.sign_in_window_minutes),
        totp_required_for_staff=settings.totp_required_for_staff,
        secret_key=settings.secret_key)


def create_app(*, engine: Engine | None = None,
               clock: Callable[[], dt.datetime] = utcnow) -> FastAPI:
    """The portal on ``engine`` (default: ODD17_DATABASE_URL's); ``clock`` is the units of
    work's (tests move it)."""
    from odd17.db import get_engine
    from odd17.web import admin, api, api_tokens, applicant, auth, finance, manager, reviewing

    settings = get_settings()
    app = FastAPI(title="odd17", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine = engine or get_engine()
    app.state.clock = clock
    app.state.policy = account_policy(settings)
    app.state.secure = is_https(settings.public_url)
    app.state.secret = (settings.secret_key or secrets.token_urlsafe(32)).encode("utf-8")
    app.middleware("http")(security_middleware(app.state.secure))
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    _error_pages(app)
    app.middleware("http")(_htmx_errors)

    @app.get("/", response_class=HTMLResponse, name="home")
    def home(request: Request, _: Principal | None = Guard("home")) -> HTMLResponse:
        return page(request, "home.html", {})

    app.include_router(auth.router)
    app.include_router(applicant.router)
    app.include_router(manager.router)
    app.include_router(reviewing.router)
    app.include_router(finance.router)
    app.include_router(admin.router)
    app.include_router(api_tokens.router)
    app.mount("/api/v1", api.create_api(app))
    return app


def _error_pages(app: FastAPI) -> None:
    """Every refusal is a French HTML page (or, for htmx, a redirect header)."""

    @app.exception_handler(SignInRequired)
    def _sign_in(request: Request, exc: SignInRequired) -> Response:
        target = request.url_for("totp_form" if exc.totp_pending else "sign_in_form")
        if request.headers.get("HX-Request"):
            return Response(status_code=401, headers={"HX-Redirect": str(target)})
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(Forbidden)
    def _forbidden(request: Request, exc: Forbidden) -> Response:
        return page(request, "message.html", {
            "title": "Accès refusé", "text": "Votre compte ne donne pas accès à cette page."},
            status_code=403)

    @app.exception_handler(CsrfRefused)
    def _csrf(request: Request, exc: CsrfRefused) -> Response:
        return page(request, "message.html", {
            "title": "Formulaire expiré",
            "text": "Ce formulaire a expiré ou ne vient pas de ce site : rechargez la page et "
                    "recommencez."}, status_code=403)

    @app.exception_handler(StarletteHTTPException)
    def _http(request: Request, exc: StarletteHTTPException) -> Response:
        title, text = _STATUS_TEXT.get(exc.status_code, ("Erreur", "La demande a échoué."))
        return page(request, "message.html", {"title": title, "text": text},
                    status_code=exc.status_code)


# An htmx request answered 4xx (a form with its errors, a refusal): the page's <main> replaces
# the current one, whatever part the request asked for (static/odd17.js swaps 4xx answers).
_HTMX_ERROR = {"HX-Retarget": "#contenu", "HX-Reselect": "#contenu", "HX-Reswap": "outerHTML"}


async def _htmx_errors(request: Request,
                       call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    response = await call_next(request)
    if (request.headers.get("HX-Request") and 400 <= response.status_code < 500
            and "HX-Redirect" not in response.headers):
        response.headers.update(_HTMX_ERROR)
    return response


def route_table(app: FastAPI) -> list[APIRoute]:
    """Every page route of ``app``, included routers' too (FastAPI keeps those behind an
    ``_IncludedRouter``): what the authorisation matrix test walks."""
    found: list[APIRoute] = []
    pending: list[object] = list(app.routes)
    while pending:
        route = pending.pop(0)
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):
            pending.extend(route.original_router.routes)
    return found
