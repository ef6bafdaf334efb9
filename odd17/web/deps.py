"""What routes share: the unit of work of a request, the signed-in user (``current_user``,
``require_role``), the route guard that applies ``policy.ROUTE_POLICY`` and the CSRF check.

A route opens its units of work with :func:`uow`; the guard reads the session in one of its
own first (and records ``last_seen``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from fastapi import Depends, HTTPException, Request

from models import NotFound
from odd17.services import signin
from odd17.services.access import Principal, Role, has_any
from odd17.uow import Context, UnitOfWork, open_uow
from odd17.web.policy import ROUTE_POLICY, Who
from odd17.web.security import CSRF_FIELD, CSRF_HEADER, SESSION_COOKIE, CsrfRefused, csrf_ok

T = TypeVar("T")


class SignInRequired(Exception):
    """No session (or one that waits for its TOTP code): the browser goes to sign in."""

    def __init__(self, totp_pending: bool = False) -> None:
        self.totp_pending = totp_pending


class Forbidden(Exception):
    """Signed in, without the role this page needs."""


@contextmanager
def uow(request: Request, actor: str | None = None) -> Iterator[UnitOfWork]:
    state = request.app.state
    session = getattr(request.state, "session", None)
    who = actor or (f"web:{session.principal.email}" if session else "web")
    context = Context.from_settings(who, clock=state.clock)
    with open_uow(state.engine, context) as unit:
        yield unit


def run(request: Request, use_case: Callable[[UnitOfWork], T]) -> T:
    """Run a use case in the request's unit of work; a missing or foreign object (the use
    case's ``NotFound``) answers 404, the same page for both."""
    try:
        with uow(request) as unit:
            return use_case(unit)
    except NotFound:
        raise HTTPException(404) from None


def signed_in_email(user: Principal | None) -> str:
    """The address of the user a route's guard let in (a signed-in one only)."""
    assert user is not None
    return user.email


def load_session(request: Request) -> signin.SessionState | None:
    """The browser's session (once per request), kept on ``request.state.session``."""
    if not hasattr(request.state, "session"):
        with uow(request) as unit:
            request.state.session = signin.session_for(unit, request.cookies.get(SESSION_COOKIE))
    return request.state.session  # type: ignore[no-any-return]


def current_user(request: Request) -> Principal:
    """The signed-in user of a full session; otherwise the browser is sent to sign in."""
    state = load_session(request)
    if state is None or state.totp_pending:
        raise SignInRequired(totp_pending=state is not None)
    return state.principal


def require_role(*roles: Role) -> Callable[[Request], Principal]:
    """A dependency: the signed-in user, who must have one of ``roles`` (403 otherwise)."""
    wanted = frozenset(roles)

    def dependency(request: Request) -> Principal:
        principal = current_user(request)
        if not has_any(principal, wanted):
            raise Forbidden
        return principal

    return dependency


def guard(route: str) -> Callable[[Request], Principal | None]:
    """The dependency of route ``route``: its rule in ROUTE_POLICY (KeyError at start-up for a
    route without one)."""
    rule = ROUTE_POLICY[route]

    def dependency(request: Request) -> Principal | None:
        state = load_session(request)
        if rule.who is Who.public:
            return state.principal if state and not state.totp_pending else None
        if rule.who is Who.any_session:
            if state is None or not rule.permits(state.principal):
                raise SignInRequired
            return state.principal
        if rule.who is Who.totp_pending:
            if state is None or not state.totp_pending:
                raise SignInRequired
            return state.principal
        principal = current_user(request)
        if not rule.permits(principal):
            raise Forbidden
        return principal

    return dependency


def Guard(route: str) -> Principal | None:  # reads like the Depends it is
    return Depends(guard(route))  # type: ignore[no-any-return]


async def check_csrf(request: Request) -> None:
    """For every route that changes something: the form's field or the htmx header."""
    load_session(request)  # a signed-in browser's token is its session's
    form = await request.form()
    sent = request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD)
    if not csrf_ok(request, sent if isinstance(sent, str) else None):
        raise CsrfRefused
