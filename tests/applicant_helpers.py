"""Shared pieces of the applicant-space tests: a fixed clock, a unit of work, files."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine

from odd17.services import attachments
from odd17.settings import load_fund_config
from odd17.uow import Context, Runner, UnitOfWork, open_uow

NOW = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)
LEAD = "direction@passerelles.example.org"
MEMBER = "contact@seine-aval.example.org"
STRANGER = "curieux@ailleurs.example.org"
PUBLIC = "https://portail.example.org"
CONFIG = load_fund_config(None)


def context(actor: str = "portail", now: dt.datetime = NOW) -> Context:
    return Context(actor=actor, config=CONFIG, clock=lambda: now)


@contextmanager
def uow(engine: Engine, now: dt.datetime = NOW) -> Iterator[UnitOfWork]:
    with open_uow(engine, context(now=now)) as unit:
        yield unit


def runner(engine: Engine) -> Runner:
    return Runner(engine, context())


def store(tmp_path: Path, max_bytes: int = 1024 * 1024) -> attachments.UploadStore:
    return attachments.UploadStore(folder=tmp_path / "uploads", max_bytes=max_bytes)


def pdf(text: str = "statuts") -> bytes:
    return b"%PDF-1.7\n" + text.encode() + b"\n%%EOF\n"


PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
JPEG_BYTES = b"\xff\xd8\xff\xe0" + b"\x00" * 32


def zipped(parts: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
    return out.getvalue()


ODT_BYTES = zipped({"mimetype": attachments.ODT.encode(), "content.xml": b"<x/>"})
DOCX_BYTES = zipped({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w/>"})
XLSX_BYTES = zipped({"[Content_Types].xml": b"<Types/>", "xl/workbook.xml": b"<x/>"})
