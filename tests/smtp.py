"""A real SMTP server on loopback for the tests (aiosmtpd), recording what it receives.

``SmtpServer`` runs in the test's process; ``SmtpProcess`` runs ``python -m tests.smtp`` in a
process of its own, writing each accepted message to a folder before it answers 250, for
tests that kill the dispatcher and count afterwards what the server really has."""

from __future__ import annotations

import argparse
import email
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from email.message import Message
from email.policy import default
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: Message
    options: list[str] = field(default_factory=list)  # MAIL FROM options (SMTPUTF8, BODY=…)

    def part(self, subtype: str) -> str:
        for part in self.message.walk():
            if part.get_content_type() == f"text/{subtype}":
                return part.get_content()  # type: ignore[attr-defined,no-any-return]
        raise AssertionError(f"no text/{subtype} part")


@dataclass
class Inbox:
    received: list[Received] = field(default_factory=list)
    # recipient -> the reply refusing it at RCPT (e.g. "450 4.2.0 Mailbox busy")
    refuse: dict[str, str] = field(default_factory=dict)
    folder: Path | None = None  # also write each message there (SmtpProcess)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        data = envelope.original_content or envelope.content
        if self.folder is not None:  # on disk before the 250: accepted means recorded
            name = f"{time.time_ns()}"
            (self.folder / f".{name}.tmp").write_bytes(data)
            os.replace(self.folder / f".{name}.tmp", self.folder / f"{name}.eml")
            return "250 Message accepted for delivery"
        self.received.append(Received(
            envelope.mail_from, list(envelope.rcpt_tos),
            email.message_from_bytes(data, policy=default), list(envelope.mail_options)))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port}")


class SmtpServer:
    """aiosmtpd in a thread of this process. Like many real servers, and like aiosmtpd by
    default, it does not offer SMTPUTF8 unless asked."""

    def __init__(self, port: int, *, smtputf8: bool = False) -> None:
        self.port, self.smtputf8, self.inbox = port, smtputf8, Inbox()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port,
                                     enable_SMTPUTF8=self.smtputf8)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


class SmtpProcess:
    """aiosmtpd in a subprocess, each accepted message a file in ``folder``."""

    def __init__(self, port: int, folder: Path, *, smtputf8: bool = False) -> None:
        self.port, self.folder, self.smtputf8 = port, folder, smtputf8
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", "tests.smtp", "--port", str(self.port),
                "--folder", str(self.folder)] + (["--smtputf8"] if self.smtputf8 else [])
        self.proc = subprocess.Popen(args, cwd=ROOT)
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None

    def count(self) -> int:
        return sum(1 for _ in self.folder.glob("*.eml"))

    def messages(self) -> list[Message]:
        return [email.message_from_bytes(p.read_bytes(), policy=default)
                for p in sorted(self.folder.glob("*.eml"))]


def main() -> None:
    parser = argparse.ArgumentParser(description="aiosmtpd writing what it accepts to a folder")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--smtputf8", action="store_true")
    args = parser.parse_args()
    handler: Any = Inbox(folder=args.folder)
    controller = Controller(handler, hostname="127.0.0.1", port=args.port,
                            enable_SMTPUTF8=args.smtputf8)
    controller.start()
    try:
        threading.Event().wait()  # until terminated
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
