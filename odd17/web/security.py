"""Security of every response: headers (CSP without inline script, no framing, no referrer
leak, no sniffing, ``charset=utf-8`` on HTML), the session and anti-CSRF cookies, and the
anti-CSRF token of forms.

Forms that change something carry a token, in a hidden field ``csrf_token`` or (htmx) the
``X-CSRF-Token`` header: for a signed-in browser the session's own random token (synchronizer
token); before sign-in, an HMAC of a random cookie under the server's key (signed double
submit: a cookie planted by a neighbouring site cannot be matched without the key)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Awaitable, Callable

from fastapi import Request, Response

SESSION_COOKIE = "odd17_session"
ANON_COOKIE = "odd17_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{32,64}")

HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; object-src 'none'; base-uri 'self'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",  # a sign-in link must not leak to another site
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


class CsrfRefused(Exception):
    """A changing request without the right token."""


def is_https(base_url: str) -> bool:
    return base_url.lower().startswith("https://")


def anonymous_token(secret: bytes, cookie: str) -> str:
    return hmac.new(secret, b"csrf:" + cookie.encode("ascii"), hashlib.sha256).hexdigest()


def expected_token(request: Request) -> str:
    """The token this browser's forms carry (see module docstring)."""
    session = getattr(request.state, "session", None)
    if session is not None:
        return str(session.csrf_token)
    return anonymous_token(request.app.state.secret, request.state.anon_cookie)


def csrf_ok(request: Request, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(str(sent).encode("utf-8"),
                                              expected_token(request).encode("utf-8"))


def security_middleware(secure: bool) -> Callable[[Request, Callable[[Request],
                                                  Awaitable[Response]]], Awaitable[Response]]:
    async def middleware(request: Request,
                         call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        anon = request.cookies.get(ANON_COOKIE, "")
        fresh = not _TOKEN_SHAPE.fullmatch(anon)
        if fresh:
            anon = secrets.token_urlsafe(32)
        request.state.anon_cookie = anon
        response = await call_next(request)
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        kind = response.headers.get("content-type", "")
        if kind.startswith("text/html"):
            if "charset" not in kind:
                response.headers["content-type"] = "text/html; charset=utf-8"
            response.headers.setdefault("Cache-Control", "no-store")  # personal pages
        if fresh:
            response.set_cookie(ANON_COOKIE, anon, httponly=True, samesite="lax", secure=secure,
                                path="/")
        return response

    return middleware
