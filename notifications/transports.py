"""Transports: the embedded default writes real .eml files into a folder; ``smtp`` sends
through yagmail, one connection per batch."""

from __future__ import annotations

import os
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

import yagmail


class Transport(Protocol):
    def __enter__(self) -> Transport: ...
    def __exit__(self, *exc: object) -> None: ...
    def send(self, message: EmailMessage, name: str) -> None: ...


class EmlFolder:
    """Each message a ``.eml`` file (RFC 5322, multipart/alternative), written atomically."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __enter__(self) -> EmlFolder:
        self.folder.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def send(self, message: EmailMessage, name: str) -> None:
        path = self.folder / f"{name}.eml"
        tmp = self.folder / f".{name}.eml.tmp"
        tmp.write_bytes(bytes(message))
        os.replace(tmp, path)


class Smtp:
    """SMTP through yagmail: host, port, STARTTLS or SSL, login or none; the connection is
    opened once for a batch and closed after it."""

    def __init__(self, *, host: str, port: int, user: str | None, password: str | None,
                 starttls: bool, ssl: bool, sender: str, timeout: float = 30) -> None:
        self.options = {"host": host, "port": port, "smtp_starttls": starttls, "smtp_ssl": ssl,
                        "smtp_skip_login": not user, "timeout": timeout}
        self.user, self.password, self.sender = user or sender, password, sender
        self.yag: yagmail.SMTP | None = None

    def __enter__(self) -> Smtp:
        self.yag = yagmail.SMTP(self.user, self.password, soft_email_validation=False,
                                **self.options)
        self.yag.login()  # connects (and logs in unless smtp_skip_login); raises when down
        return self

    def __exit__(self, *exc: object) -> None:
        if self.yag is not None:
            self.yag.close()

    def send(self, message: EmailMessage, name: str) -> None:
        assert self.yag is not None
        # yagmail holds the connection; the message is ours, sent as built.
        self.yag.smtp.send_message(message, from_addr=self.sender, to_addrs=[message["To"]])
