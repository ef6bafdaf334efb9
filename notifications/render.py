"""Rendering: Jinja2 templates (subject, plain text, HTML) with Babel's French money and dates.
A fund manager overrides any template by dropping a file of the same name in
``ODD17_TEMPLATES_DIR``; the packaged ones fill in the rest."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    TemplateNotFound,
    UndefinedError,
)

from models import DomainError
from notifications.events import EVENTS
from rules.money import date_fr, eur


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    text: str
    html: str


def _eur(value: Any) -> str:
    return eur(Decimal(str(value)))


def _date(value: Any) -> str:
    return date_fr(value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10]))


@lru_cache(maxsize=8)
def environment(override: str | None, html: bool) -> Environment:
    loaders: list[Any] = [PackageLoader("notifications", "templates")]
    if override:
        loaders.insert(0, FileSystemLoader(override))
    env = Environment(loader=ChoiceLoader(loaders), autoescape=html, undefined=StrictUndefined,
                      keep_trailing_newline=False, trim_blocks=False)
    env.filters["eur"] = _eur
    env.filters["date_fr"] = _date
    return env


def render(event: str, context: dict[str, Any], *, fund_name: str,
           override: Path | None = None) -> Rendered:
    if event not in EVENTS:
        raise DomainError(f"événement inconnu « {event} » (événements : {', '.join(EVENTS)})")
    folder = str(override) if override else None
    values = {"fund_name": fund_name, **context}
    try:
        subject = environment(folder, False).get_template(f"{event}.subject.j2").render(values)
        text = environment(folder, False).get_template(f"{event}.txt.j2").render(values)
        html = environment(folder, True).get_template(f"{event}.html.j2").render(values)
    except TemplateNotFound as exc:
        raise DomainError(f"modèle introuvable : {exc.name}") from exc
    except UndefinedError as exc:
        raise DomainError(f"modèle {event} : {exc.message}") from exc
    # one line; only ASCII blanks folded: Babel's amounts keep their non-breaking spaces
    return Rendered(re.sub(r"[ \t\r\n]+", " ", subject).strip(), text.strip() + "\n", html)


def build_message(rendered: Rendered, *, sender: str, recipient: str, key: str,
                  now: dt.datetime) -> EmailMessage:
    """multipart/alternative: plain text then HTML. The Message-ID derives from the
    idempotency key, so that a receiving server can recognise a message it already has."""
    message = EmailMessage()
    message["Subject"] = rendered.subject
    message["From"] = sender
    message["To"] = recipient
    message["Date"] = format_datetime(now)
    domain = sender.rsplit("@", 1)[-1].strip("> ") or "odd17.local"
    message["Message-ID"] = make_msgid(idstring=key.replace(":", ".").replace(" ", "")[:60],
                                       domain=domain)
    message["X-Odd17-Key"] = key
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message
