"""The Jinja2 environment of the pages (autoescaped) and ``page``, which renders one with what
every page needs: the signed-in user and the anti-CSRF token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from odd17.web.security import CSRF_FIELD, expected_token

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))


def _filters() -> None:
    from odd17.web.applicant import amount, status_label, when
    from rules.labels import decision_label

    templates.env.filters.update(when=when, amount=amount, status_label=status_label,
                                 decision_label=decision_label)


def page(request: Request, name: str, context: dict[str, Any],
         status_code: int = 200) -> HTMLResponse:
    if "when" not in templates.env.filters:
        _filters()
    session = getattr(request.state, "session", None)
    values = {"signed_in": session.principal if session and not session.totp_pending else None,
              "csrf_token": expected_token(request), "csrf_field": CSRF_FIELD, **context}
    return templates.TemplateResponse(request, name, values, status_code=status_code)
