"""The JSON API (issue 14), a sub-application mounted at ``/api/v1`` with its own OpenAPI
document (``/api/v1/openapi.json``; the portal's pages have none). The actions (writes) are
in api_actions.py.

A script authenticates with ``Authorization: Bearer <token>`` (a personal token of
``odd17 token create``, services/tokens.py); the token's scope is its owner's role, checked
per endpoint: 401 without a valid token, 403 with one of another scope. The bodies are the
read models the CLI's ``--json`` prints (services/queries.py, services/finance.py), as they
are; the OpenAPI schemas are derived from those same TypedDicts, so they cannot drift."""

from __future__ import annotations

import datetime as dt
import keyword
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, Union, get_args, get_origin, get_type_hints

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, create_model
from typing_extensions import is_typeddict

from models import DomainError, NotFound, Status
from odd17.services import finance, queries, tokens
from odd17.uow import Context, open_uow
from rules.document import explain

READERS = frozenset({"manager", "finance", "admin"})   # the applications
FINANCE = frozenset({"finance", "manager"})            # the envelope and the tranches due
PAGE_MAX = 500
_bearer = HTTPBearer(auto_error=False, description="Jeton personnel : odd17 token create")


class FieldProblem(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    detail: str                                  # in French
    errors: list[FieldProblem] | None = None     # 422: one per field that cannot be read


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "Jeton absent, invalide ou révoqué"},
    403: {"model": Problem, "description": "Le rôle du jeton ne donne pas accès"},
    422: {"model": Problem, "description": "Paramètre ou corps illisible (motif par champ)"}}
# what rules.document.explain leaves in English: the request's own errors
_FRENCH = {"json_invalid": "JSON illisible", "json_type": "JSON attendu",
           "date_parsing": "date invalide : attendu AAAA-MM-JJ",
           "date_from_datetime_parsing": "date invalide : attendu AAAA-MM-JJ",
           "date_type": "date invalide : attendu AAAA-MM-JJ",
           "bool_type": "valeur invalide", "too_short": "au moins {min_length} élément(s)",
           "int_parsing_size": "nombre trop grand"}
_PLACES = ("body", "query", "path", "header")


# --- OpenAPI schemas from the read models' TypedDicts ---------------------------------------

_MODELS: dict[str, type[BaseModel]] = {}


def model_of(typed: Any, names: dict[str, Any] | None = None) -> type[BaseModel]:
    """A pydantic model with the fields of TypedDict ``typed`` (nested ones too): pydantic
    refuses ``typing.TypedDict`` on Python 3.11, and a hand-written copy would drift."""
    if typed.__name__ in _MODELS:
        return _MODELS[typed.__name__]
    hints = get_type_hints(typed, localns=names, include_extras=True)
    fields: dict[str, Any] = {}
    for name, hint in hints.items():
        kind = _convert(hint, names)
        optional = get_origin(hint) is typing.NotRequired or name not in typed.__required_keys__
        default: Any = None if optional else ...
        if keyword.iskeyword(name):  # "from" of a status change
            fields[name + "_"] = (kind, Field(default, alias=name))
        else:
            fields[name] = (kind, Field(default))
    model = create_model(typed.__name__, __config__=ConfigDict(populate_by_name=True),
                         **fields)
    _MODELS[typed.__name__] = model
    return model


def _convert(hint: Any, names: dict[str, Any] | None) -> Any:
    if is_typeddict(hint):
        return model_of(hint, names)
    origin = get_origin(hint)
    if origin is list:
        return list[_convert(get_args(hint)[0], names)]  # type: ignore[misc]
    if origin in (Union, types.UnionType):
        converted = tuple(_convert(arg, names) for arg in get_args(hint))
        return Union[converted]  # noqa: UP007 - built from a tuple
    if origin is typing.NotRequired:  # kept by include_extras: what it wraps
        return _convert(get_args(hint)[0], names)
    return hint


_NAMES = {"GrantDetail": finance.GrantDetail}
ApplicationRow = model_of(queries.ApplicationRow, _NAMES)
ApplicationDetail = model_of(queries.ApplicationDetail, _NAMES)
FinanceReport = model_of(finance.FinanceReport, _NAMES)
TrancheDue = model_of(finance.TrancheDue, _NAMES)


class _Raised:
    """What ``explain`` reads of a pydantic error, for the request's validation errors."""

    def __init__(self, errors: Any) -> None:
        self._errors = list(errors)

    def errors(self, include_url: bool = False) -> list[Any]:
        return self._errors


def french_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    """One ``{field, message}`` in French per field that could not be read."""
    raw = list(exc.errors())
    found = []
    for err, said in zip(raw, explain(_Raised(raw)), strict=True):  # type: ignore[arg-type]
        loc = tuple(err.get("loc", ()))
        if loc and loc[0] in _PLACES:
            loc = loc[1:]
        field = ".".join(str(part) for part in loc) or "(corps)"
        message = said["message"]
        kind = err.get("type", "")
        if kind in _FRENCH:
            message = _FRENCH[kind].format(**dict(err.get("ctx") or {}))
        elif message == err.get("msg") and kind != "value_error":  # still pydantic's English
            message = "valeur invalide"
        found.append({"field": field, "message": message})
    return found


def _unreadable(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = french_errors(exc)
    detail = "requête invalide : " + " ; ".join(f"{e['field']} : {e['message']}"
                                                for e in errors)
    return JSONResponse({"detail": detail, "errors": errors}, status_code=422)


# --- authentication -------------------------------------------------------------------------

def scoped(allowed: frozenset[str]) -> Callable[..., tokens.Principal]:
    """The dependency of an endpoint open to tokens of the ``allowed`` scopes."""

    def dependency(request: Request, credentials: Annotated[
            HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> tokens.Principal:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise HTTPException(401, "jeton d'API requis : en-tête Authorization: Bearer "
                                "<jeton>", headers={"WWW-Authenticate": "Bearer"})
        try:
            with _uow(request, "api") as unit:
                principal = tokens.authenticate(unit, credentials.credentials)
        except DomainError as exc:
            raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from None
        if principal["scope"] not in allowed:
            raise HTTPException(403, f"un jeton de rôle « {principal['scope']} » ne donne pas "
                                "accès à cette ressource")
        request.state.api_principal = principal
        return principal

    return dependency


def _uow(request: Request, actor: str) -> Any:
    parent = request.app.state.parent
    return open_uow(parent.state.engine, Context.from_settings(actor, clock=parent.state.clock))


def _actor(request: Request) -> str:
    return f"api:{request.state.api_principal['owner']}"


# --- endpoints -------------------------------------------------------------------------------

def create_api(parent: FastAPI) -> FastAPI:
    """The API application; it reads the engine and clock of the portal ``parent``."""
    api = FastAPI(title="odd17 API", version="1", openapi_url="/openapi.json", docs_url=None,
                  redoc_url=None, description="API du Fonds ODD 17 : lectures (comme "
                  "--json) et actions du chargé de mission et du responsable financier.")
    api.state.parent = parent
    api.add_exception_handler(RequestValidationError, _unreadable)

    @api.get("/applications", response_model=list[ApplicationRow],  # type: ignore[valid-type]
             responses=ERRORS, dependencies=[Depends(scoped(READERS))],
             summary="Dossiers, par pages (odd17 list --json)")
    def applications(request: Request,
                     status: Annotated[Status | None, Query()] = None,
                     limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 50,
                     page: Annotated[int, Query(ge=1, le=1_000_000)] = 1) -> JSONResponse:
        with _uow(request, _actor(request)) as unit:
            rows = list(queries.iter_applications(unit, status, limit=limit,
                                                  offset=(page - 1) * limit))
            total = queries.count_applications(unit, status)
        return JSONResponse(rows, headers={"X-Total-Count": str(total)})

    @api.get("/applications/{reference}", response_model=ApplicationDetail,
             responses={**ERRORS, 404: {"model": Problem, "description": "Dossier inconnu"}},
             dependencies=[Depends(scoped(READERS))], summary="Un dossier (odd17 show --json)")
    def application(request: Request, reference: str) -> JSONResponse:
        if len(reference) > 30 or not reference.isprintable():
            raise HTTPException(404, "dossier inconnu")
        try:
            with _uow(request, _actor(request)) as unit:
                detail = queries.application_detail(unit, reference)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None
        return JSONResponse(detail)

    @api.get("/finance", response_model=FinanceReport,
             responses={**ERRORS, 409: {"model": Problem, "description": "Enveloppe non ouverte"}},
             dependencies=[Depends(scoped(FINANCE))],
             summary="Situation de l'enveloppe (odd17 finance --json)")
    def finance_report(request: Request) -> JSONResponse:
        try:
            with _uow(request, _actor(request)) as unit:
                report = finance.finance_report(unit, on=unit.today)
        except NotFound as exc:  # the envelope is not open
            raise HTTPException(409, str(exc)) from None
        return JSONResponse(report)

    @api.get("/tranches", response_model=list[TrancheDue],  # type: ignore[valid-type]
             responses=ERRORS, dependencies=[Depends(scoped(FINANCE))],
             summary="Tranches échues et non versées (odd17 tranches --json)")
    def tranches(request: Request,
                 date: Annotated[dt.date | None, Query(description="défaut : aujourd'hui")]
                 = None) -> JSONResponse:
        with _uow(request, _actor(request)) as unit:
            rows = finance.tranches_due(unit, date or unit.today)
        return JSONResponse(rows)

    from odd17.web.api_actions import add_actions

    add_actions(api)
    return api


__all__ = ["create_api"]
