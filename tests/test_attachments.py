"""Attachments (issue 13): type read from the content, size-limited, stored under their hash
outside any web root, readable only by those who may see the draft or the application."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine

from models import DomainError, NotFound
from odd17.services import attachments, drafts
from tests.applicant_helpers import (
    DOCX_BYTES,
    JPEG_BYTES,
    LEAD,
    MEMBER,
    ODT_BYTES,
    PNG_BYTES,
    PUBLIC,
    STRANGER,
    XLSX_BYTES,
    pdf,
    store,
    uow,
    zipped,
)


def new_draft(engine: Engine) -> int:
    with uow(engine) as u:
        draft = drafts.create_draft(u, LEAD, document={"title": "x"})
        drafts.invite(u, draft, LEAD, MEMBER, public_url=PUBLIC)
        return draft


def attach(engine: Engine, tmp_path: Path, draft: int, data: bytes, name: str = "f.pdf",
           kind: str = "statuts", who: str = LEAD,
           max_bytes: int = 1024 * 1024) -> attachments.AttachmentView:
    with uow(engine) as u:
        return attachments.add_attachment(u, store(tmp_path, max_bytes), draft, who, kind,
                                          name, io.BytesIO(data))


@pytest.mark.parametrize("data, name, media_type", [
    (pdf(), "statuts.pdf", attachments.PDF),
    (PNG_BYTES, "scan.png", attachments.PNG),
    (JPEG_BYTES, "photo.JPG", attachments.JPEG),
    (JPEG_BYTES, "photo.jpeg", attachments.JPEG),
    (ODT_BYTES, "budget.odt", attachments.ODT),
    (DOCX_BYTES, "budget.docx", attachments.DOCX),
    (XLSX_BYTES, "budget.xlsx", attachments.XLSX),
    (pdf(), "sans extension", attachments.PDF),
])
def test_accepted_types_are_read_from_the_content(engine: Engine, tmp_path: Path, data: bytes,
                                                  name: str, media_type: str) -> None:
    draft = new_draft(engine)
    row = attach(engine, tmp_path, draft, data, name)
    assert row["media_type"] == media_type and row["size"] == len(data)
    stored = tmp_path / "uploads" / row["sha256"][:2] / row["sha256"]
    assert stored.read_bytes() == data
    assert [p.name for p in (tmp_path / "uploads").iterdir()] == [row["sha256"][:2]]  # no temp


@pytest.mark.parametrize("data, name, message", [
    (b"MZ\x90\x00 an executable", "statuts.pdf", "n'est pas un PDF, ODT"),
    (PNG_BYTES, "statuts.pdf", "annonce un PDF mais son contenu est un PNG"),
    (pdf(), "budget.xlsx", "annonce un XLSX mais son contenu est un PDF"),
    (zipped({"a.txt": b"x"}), "budget.docx", "n'est pas un"),
    (zipped({"mimetype": b"application/vnd.oasis.opendocument.spreadsheet"}), "b.odt",
     "n'est pas un"),
    (zipped({"[Content_Types].xml": b"<T/>", "ppt/x.xml": b""}), "b.docx", "n'est pas un"),
    (b"PK\x03\x04 truncated zip", "budget.docx", "n'est pas un"),
    (b"<html><script>alert(1)</script>", "page.html", "n'est pas un"),
    (b"", "vide.pdf", "vide"),
])
def test_a_file_that_lies_about_its_type_is_refused(engine: Engine, tmp_path: Path,
                                                    data: bytes, name: str, message: str) -> None:
    draft = new_draft(engine)
    with pytest.raises(DomainError, match=message):
        attach(engine, tmp_path, draft, data, name)
    with uow(engine) as u:
        assert attachments.draft_attachments(u, draft, LEAD) == []
    assert not any(p.is_file() for p in (tmp_path / "uploads").rglob("*"))


def test_a_file_over_the_limit_is_refused_and_leaves_nothing(engine: Engine,
                                                             tmp_path: Path) -> None:
    draft = new_draft(engine)
    limit = 2 * 1024 * 1024
    attach(engine, tmp_path, draft, pdf("x" * (limit - 20)), max_bytes=limit)  # at the limit
    with pytest.raises(DomainError, match="trop volumineux : au plus 2 Mo"):
        attach(engine, tmp_path, draft, pdf("x" * limit), max_bytes=limit)
    assert len([p for p in (tmp_path / "uploads").rglob("*") if p.is_file()]) == 1


@pytest.mark.parametrize("name, shown", [
    ("../../../../etc/passwd.pdf", "passwd.pdf"),
    ("..\\..\\windows\\system32\\x.pdf", "x.pdf"),
    ("/absolute/path.pdf", "path.pdf"),
    ("..", "fichier"),
    ("", "fichier"),
    ("fdp\u202eexe.pdf", "fdpexe.pdf"),
    ("nul\x00byte\n.pdf", "nulbyte.pdf"),
    ("<img src=x onerror=alert(1)>.pdf", "<img src=x onerror=alert(1)>.pdf"),
])
def test_the_original_name_is_only_a_label(engine: Engine, tmp_path: Path, name: str,
                                           shown: str) -> None:
    draft = new_draft(engine)
    row = attach(engine, tmp_path, draft, pdf(name), name)
    assert row["filename"] == shown
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".db"
             and "-wal" not in p.name and "-shm" not in p.name]
    assert files == [tmp_path / "uploads" / row["sha256"][:2] / row["sha256"]]


@given(st.text(max_size=600))
def test_display_names_are_bounded_single_components(name: str) -> None:
    shown = attachments.display_name(name)
    assert 0 < len(shown) <= attachments.MAX_FILENAME
    assert "/" not in shown and "\\" not in shown and shown not in (".", "..")
    assert not any(ord(c) < 32 or 0x202A <= ord(c) <= 0x202E for c in shown)


def test_path_of_accepts_only_a_hash(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        store(tmp_path).path_of("../" + "a" * 61)


def test_only_those_who_see_the_draft_read_its_files(engine: Engine, tmp_path: Path) -> None:
    draft = new_draft(engine)
    row = attach(engine, tmp_path, draft, pdf(), who=MEMBER, kind="rib")
    with uow(engine) as u:
        for who in (LEAD, MEMBER):
            shown, path = attachments.open_attachment(u, store(tmp_path), row["id"], who)
            assert shown == row and path.read_bytes() == pdf()
    for who, ident in ((STRANGER, row["id"]), (LEAD, row["id"] + 1)):
        with pytest.raises(NotFound, match="pièce jointe introuvable"), uow(engine) as u:
            attachments.open_attachment(u, store(tmp_path), ident, who)
    with pytest.raises(NotFound, match="brouillon introuvable"):
        attach(engine, tmp_path, draft, pdf(), who=STRANGER)
    with pytest.raises(DomainError, match="type de pièce"):
        attach(engine, tmp_path, draft, pdf(), kind="../x")


def test_a_removed_file_leaves_the_draft(engine: Engine, tmp_path: Path) -> None:
    draft = new_draft(engine)
    row = attach(engine, tmp_path, draft, pdf())
    with uow(engine) as u:
        attachments.remove_attachment(u, draft, MEMBER, row["id"])
    with uow(engine) as u:
        assert attachments.draft_attachments(u, draft, LEAD) == []
        with pytest.raises(NotFound):
            attachments.open_attachment(u, store(tmp_path), row["id"], LEAD)
        with pytest.raises(NotFound):
            attachments.remove_attachment(u, draft, LEAD, row["id"])
