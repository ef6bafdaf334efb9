"""Transports: the embedded default writes real .eml files into a folder; ``smtp`` sends
through yagmail, one connection per run.

A transport tells the dispatcher how a send ended, because the outcomes are not alike:

- ``Unreachable``: the server (or folder) cannot be reached; the message was not handed over
  and is not at fault: it waits, without losing an attempt;
- ``Refused``: the server refused this message (or it cannot be sent there): its own failure,
  temporary (4xx: an attempt) or permanent (5xx: failed at once); the connection stays usable;
- ``Interrupted``: the connection broke while the message was being handed over: the server
  may have it, so it is not sent again automatically."""

from __future__ import annotations

import contextlib
import os
import smtplib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import yagmail


class TransportError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Unreachable(TransportError):
    pass


class Interrupted(TransportError):
    pass


class Refused(TransportError):
    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message ready to go: envelope addresses (IDNA domains already encoded) and bytes."""

    sender: str
    recipient: str
    data: bytes                # RFC 5322, CRLF line ends
    smtputf8: bool             # an address keeps non-ASCII characters (RFC 6531)
    message_id: str


class Transport(Protocol):
    def __enter__(self) -> Transport: ...
    def __exit__(self, *exc: object) -> None: ...
    def begin(self, message: Outgoing) -> None:
        """Announce the message without handing it over (SMTP: MAIL and RCPT); ``cancel``
        undoes it. Lets the dispatcher do it while the message's claim commits."""
    def cancel(self) -> None: ...
    def send(self, message: Outgoing, name: str) -> None:
        """Hand the message over (after ``begin`` for it, or not)."""


class EmlFolder:
    """Each message a ``.eml`` file (RFC 5322, multipart/alternative), written atomically. The
    name is the message's number: a message sent again replaces its file (same Message-ID)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __enter__(self) -> EmlFolder:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise Unreachable(f"dossier {self.folder} inaccessible : {exc.strerror}") from exc
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def begin(self, message: Outgoing) -> None:
        return None

    def cancel(self) -> None:
        return None

    def send(self, message: Outgoing, name: str) -> None:
        path = self.folder / f"{name}.eml"
        tmp = self.folder / f".{name}.eml.tmp"
        try:
            tmp.write_bytes(message.data)
            os.replace(tmp, path)
        except OSError as exc:
            raise Unreachable(f"écriture impossible dans {self.folder} : {exc.strerror}") from exc


# Replies that speak of the server, not of the message: 421 = service closing the channel.
_SERVER_CODES = {421}


def _describe(exc: BaseException) -> str:
    return f"{exc.__class__.__name__} {exc}".strip()


def _reply(code: int, text: bytes | str) -> str:
    return f"{code} {text.decode('utf-8', 'replace') if isinstance(text, bytes) else text}"


class Smtp:
    """SMTP through yagmail (host, port, STARTTLS or SSL, login or none): the connection is
    opened once for a run and closed after it. Each message goes through MAIL, RCPT and DATA
    separately, so that a broken connection before DATA is known not to have delivered it."""

    def __init__(self, *, host: str, port: int, user: str | None, password: str | None,
                 starttls: bool, ssl: bool, sender: str, timeout: float = 30) -> None:
        self.options = {"host": host, "port": port, "smtp_starttls": starttls, "smtp_ssl": ssl,
                        "smtp_skip_login": not user, "timeout": timeout}
        self.user, self.password, self.sender = user or sender, password, sender
        self.where = f"{host}:{port}"
        self.yag: yagmail.SMTP | None = None
        self.opened: Outgoing | None = None  # the message whose MAIL and RCPT were accepted

    def __enter__(self) -> Smtp:
        try:
            self.yag = yagmail.SMTP(self.user, self.password, soft_email_validation=False,
                                    **self.options)
            self.yag.login()  # connects (and logs in unless smtp_skip_login)
            self.yag.smtp.ehlo_or_helo_if_needed()  # learns the extensions (SMTPUTF8)
        except (OSError, smtplib.SMTPException) as exc:
            self.__exit__()
            raise Unreachable(f"serveur injoignable ({self.where}) : {_describe(exc)}") from exc
        return self

    def __exit__(self, *exc: object) -> None:
        if self.yag is not None and self.yag.smtp is not None:
            # the connection may be gone already: nothing to close then
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self.yag.close()
        self.yag = None

    def begin(self, message: Outgoing) -> None:
        """MAIL and RCPT: the server knows the envelope, nothing is handed over until DATA."""
        assert self.yag is not None
        smtp = self.yag.smtp
        self.cancel()  # one open transaction at a time
        options: list[str] = []
        if message.smtputf8:
            if not smtp.has_extn("smtputf8"):
                raise Refused(f"adresse {message.recipient} : caractères non ASCII avant le "
                              "« @ », que ce serveur SMTP n'accepte pas (extension SMTPUTF8 "
                              "absente) ; message non envoyé", permanent=True)
            options = ["SMTPUTF8", "BODY=8BITMIME"]
        try:
            self._expect(smtp, smtp.mail(message.sender, options), "expéditeur")
            self._expect(smtp, smtp.rcpt(message.recipient), "destinataire")
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            raise Unreachable(f"serveur injoignable ({self.where}) : {_describe(exc)}") from exc
        self.opened = message

    def cancel(self) -> None:
        if self.opened is not None and self.yag is not None:
            self.opened = None
            self._rset(self.yag.smtp)

    def send(self, message: Outgoing, name: str) -> None:
        assert self.yag is not None
        smtp = self.yag.smtp
        if self.opened is not message:
            self.begin(message)
        self.opened = None
        try:
            code, text = smtp.data(message.data)
        except smtplib.SMTPDataError as exc:  # DATA itself refused: nothing was handed over
            self._rset(smtp)
            raise self._refusal(exc.smtp_code, exc.smtp_error, "contenu") from exc
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            raise Interrupted(f"connexion perdue pendant la transmission ({_describe(exc)}) : "
                              "le serveur a pu recevoir le message ; vérifier avant de le "
                              "renvoyer") from exc
        if code != 250:
            self._rset(smtp)
            raise self._refusal(code, text, "contenu")

    def _expect(self, smtp: smtplib.SMTP, reply: tuple[int, bytes], what: str) -> None:
        code, text = reply
        if code in (250, 251):
            return
        if code in _SERVER_CODES or code == -1:
            raise smtplib.SMTPServerDisconnected(_reply(code, text))
        self._rset(smtp)
        raise self._refusal(code, text, what)

    def _refusal(self, code: int, text: bytes | str, what: str) -> Exception:
        if code in _SERVER_CODES:
            return Unreachable(f"serveur indisponible ({self.where}) : {_reply(code, text)}")
        permanent = not 400 <= code < 500
        return Refused(f"{what} refusé par le serveur : {_reply(code, text)}",
                       permanent=permanent)

    @staticmethod
    def _rset(smtp: smtplib.SMTP) -> None:
        # a dead connection shows at the next message, as Unreachable
        with contextlib.suppress(OSError, smtplib.SMTPException):
            smtp.rset()
