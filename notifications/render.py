"""Rendering: Jinja2 templates (subject, plain text, HTML) with Babel's French money and dates.
A fund manager overrides any template by dropping a file of the same name in
``ODD17_TEMPLATES_DIR``; the packaged ones fill in the rest.

Then the MIME message, built with the stdlib's ``email.mime`` classes (``EmailMessage``'s
header registry costs ~2 ms a message, a tenth of that here): multipart/alternative, text
then HTML, quoted-printable so that the ``.eml`` files stay readable."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from decimal import Decimal
from email import policy as email_policy
from email.charset import BASE64, QP, Charset
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr, parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Any

import idna
from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
)
from markupsafe import Markup

from models import DomainError
from notifications.events import EVENTS
from notifications.transports import Outgoing
from rules.labels import innovation_label, objective_label
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


def _count(n: int, singular: str, plural: str | None = None) -> str:
    """``1 raison``, ``2 raisons`` (French: 0 and 1 take the singular)."""
    return f"{n} {singular if abs(n) < 2 else plural or singular + 's'}"


def _nowrap(value: Any) -> Markup:
    """A reference kept on one line in HTML (``ODD17-2026-0007`` would break at its hyphens)."""
    return Markup('<span style="white-space: nowrap;">{}</span>').format(value)


def _environment(override: str | None, html: bool, *, auto_reload: bool) -> Environment:
    loaders: list[Any] = [PackageLoader("notifications", "templates")]
    if override:
        loaders.insert(0, FileSystemLoader(override))
    env = Environment(loader=ChoiceLoader(loaders), autoescape=html, undefined=StrictUndefined,
                      keep_trailing_newline=False, trim_blocks=False, auto_reload=auto_reload)
    env.filters.update({"eur": _eur, "date_fr": _date, "nombre": _count,
                        "objectif": objective_label, "innovation": innovation_label,
                        "ref": _nowrap if html else str})
    return env


@lru_cache(maxsize=8)
def environment(override: str | None, html: bool) -> Environment:
    """For one-off renderings (preview): a template edited meanwhile is seen."""
    return _environment(override, html, auto_reload=True)


@dataclass(frozen=True, slots=True)
class Renderer:
    """The templates as one dispatcher run sees them: each compiled once, at its first use,
    and not checked on disk again for every message (a file stat per template per message was
    a fifth of the dispatcher's time); a template edited meanwhile is seen at the next run."""

    text: Environment
    html: Environment

    @classmethod
    def for_run(cls, override: Path | None = None) -> Renderer:
        folder = str(override) if override else None
        return cls(_environment(folder, False, auto_reload=False),
                   _environment(folder, True, auto_reload=False))

    def render(self, event: str, context: dict[str, Any], *, fund_name: str,
               portal_url: str | None = None) -> Rendered:
        return _render(self, event, context, fund_name, portal_url)


def render(event: str, context: dict[str, Any], *, fund_name: str,
           portal_url: str | None = None, override: Path | None = None) -> Rendered:
    """The three parts of an event's email; any fault of a template or of the context (syntax,
    missing value, a filter given a bad value) is a ``DomainError`` naming the template."""
    folder = str(override) if override else None
    templates = Renderer(environment(folder, False), environment(folder, True))
    return _render(templates, event, context, fund_name, portal_url)


def _render(templates: Renderer, event: str, context: dict[str, Any],
            fund_name: str, portal_url: str | None = None) -> Rendered:
    if event not in EVENTS:
        raise DomainError(f"événement inconnu « {event} » (événements : {', '.join(EVENTS)})")
    # Added at rendering, like the fund's name: the portal's address (ODD17_PUBLIC_URL), so
    # that messages already queued link to wherever the portal is served when they are sent.
    values = {"fund_name": fund_name, "portal_url": portal_url, **context}
    parts: list[str] = []
    for suffix, html in (("subject", False), ("txt", False), ("html", True)):
        name = f"{event}.{suffix}.j2"
        try:
            env = templates.html if html else templates.text
            parts.append(env.get_template(name).render(values))
        except TemplateNotFound as exc:
            raise DomainError(f"modèle introuvable : {exc.name}") from exc
        except TemplateSyntaxError as exc:
            where = f"{exc.filename or exc.name or name}, ligne {exc.lineno}"
            raise DomainError(f"modèle {name} : erreur de syntaxe ({where}) : {exc.message}") \
                from exc
        except UndefinedError as exc:
            raise DomainError(f"modèle {name} : {exc.message}") from exc
        except (TemplateError, ArithmeticError, LookupError, TypeError, ValueError) as exc:
            raise DomainError(f"modèle {name} : rendu impossible ({exc.__class__.__name__} "
                              f"{exc})") from exc
    subject, text, html_part = parts
    # one line; only ASCII blanks folded: Babel's amounts keep their non-breaking spaces
    return Rendered(re.sub(r"[ \t\r\n]+", " ", subject).strip(), text.strip() + "\n", html_part)


@dataclass(frozen=True, slots=True)
class Address:
    envelope: str   # local@domain, the domain in ASCII (IDNA A-labels)
    smtputf8: bool  # the local part is not ASCII: only a server with SMTPUTF8 takes it


def address(value: str) -> Address:
    """An address ready for SMTP: a non-ASCII domain is IDNA-encoded (``exemple-associé.fr``
    -> ``xn--…``); a non-ASCII local part (``josé@…``) needs SMTPUTF8 (RFC 6531)."""
    local, at, domain = value.strip().rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in value.strip()):
        raise DomainError(f"adresse invalide : « {value} »")
    if not domain.isascii():
        try:
            domain = idna.encode(domain, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise DomainError(f"adresse « {value} » : domaine invalide ({exc})") from exc
    return Address(f"{local}@{domain}", smtputf8=not local.isascii())


@dataclass(frozen=True, slots=True)
class _Sender:
    address: Address
    header: str       # the From header, display name encoded (RFC 2047)
    header_utf8: str  # the same for an SMTPUTF8 message
    domain: str       # of the Message-IDs


@lru_cache(maxsize=8)
def _sender(sender: str) -> _Sender:
    name, bare = parseaddr(sender)
    source = address(bare or sender)
    return _Sender(source, formataddr((name, source.envelope), charset=_UTF8_QP),
                   formataddr((name, source.envelope)), source.envelope.rpartition("@")[2])


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def message_id(key: str, sender: str) -> str:
    """The Message-ID, a function of the idempotency key (and the sender's domain): every
    rendering of a message gives the same one, so a message sent twice is recognisable."""
    digest = _digest(key)[:24]
    try:
        domain = _sender(sender).domain
    except DomainError:
        domain = "odd17.local"
    return f"<odd17.{digest}@{domain}>"  # the key itself travels in X-Odd17-Key


_UTF8_QP = Charset("utf-8")  # bodies quoted-printable (readable); headers base64 (C-fast)
_UTF8_QP.body_encoding = QP
_UTF8_QP.header_encoding = BASE64


class _Compat32(email_policy.Compat32):
    """compat32, with a short printable ASCII header written as is: what ``Header`` folding
    gives for it, without building a ``Header`` per header (14 per message, a quarter of the
    time to build one). Anything else is folded as compat32 does."""

    def fold_binary(self, name: str, value: Any) -> bytes:
        if (isinstance(value, str) and value.isascii() and value.isprintable()
                and value == value.strip()
                and len(name) + 2 + len(value) <= (self.max_line_length or 78)):
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


_ASCII_SMTP = _Compat32(linesep="\r\n")
_ASCII_SMTP_SLOW = email_policy.compat32.clone(linesep="\r\n")  # the reference (tests)


def _text_part(text: str, subtype: str) -> MIMEText:
    # typeshed wants a charset name; CPython takes a Charset too and uses its QP body encoding
    return MIMEText(text, subtype, _UTF8_QP)  # type: ignore[arg-type]


def build_message(rendered: Rendered, *, sender: str, recipient: str, key: str,
                  now: dt.datetime) -> Outgoing:
    """multipart/alternative: plain text then HTML, with the Message-ID of ``message_id``.
    Raises ``DomainError`` for an address that cannot be used."""
    source, target = _sender(sender), address(recipient)
    utf8 = source.address.smtputf8 or target.smtputf8

    # typeshed types a header value as str; the compat32 policy these messages use takes a
    # Header too (hence the two ignores below)
    def header(value: str) -> str | Header:
        return value if utf8 or value.isascii() else Header(value, _UTF8_QP)

    # our own boundary: the generator's search for a free one compiles a regex per message.
    # "=_" cannot occur in quoted-printable bodies (they write "=" as "=3D"), so a boundary
    # derived from the key is safe, and it spares the per-message os.urandom of a uuid4
    message = MIMEMultipart("alternative", boundary=f"=_odd17_{_digest(key)}")
    message["Subject"] = header(rendered.subject)  # type: ignore[assignment]
    message["From"] = source.header_utf8 if utf8 else source.header
    message["To"] = target.envelope
    message["Date"] = format_datetime(now)
    message["Message-ID"] = mid = message_id(key, sender)
    message["X-Odd17-Key"] = header(key)  # type: ignore[assignment]
    message.attach(_text_part(rendered.text, "plain"))
    message.attach(_text_part(rendered.html, "html"))
    data = message.as_bytes(policy=email_policy.SMTPUTF8 if utf8 else _ASCII_SMTP)
    return Outgoing(source.address.envelope, target.envelope, data, utf8, mid)
