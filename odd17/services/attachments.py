"""Files attached to a draft or an application (issue 13).

Stored outside any web root, content-addressed: ``<upload folder>/<sha256[:2]>/<sha256>``.
The name the applicant's computer gave the file is kept for display only, never used as a
path, so ``../../etc/passwd`` is just a (sanitised) label. The type is read from the bytes:
PDF, PNG and JPEG by their magic numbers, ODT/DOCX/XLSX by the parts their zip holds (the
standard library's ``zipfile`` reads the central directory: stricter than a library that looks
at the first bytes only). A name whose extension says another type is refused as a lie."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypedDict

from sqlalchemy import select, update

from models import Application, Attachment, AttachmentKind, DomainError, Draft, NotFound
from models.base import rows_matched
from models.lookup import application_by_reference
from odd17.services.access import application_for, draft_for, is_draft_lead, is_draft_member
from odd17.uow import UnitOfWork

CHUNK = 1024 * 1024
ATTACHMENT_NOT_FOUND = "pièce jointe introuvable"
PDF, PNG, JPEG = "application/pdf", "image/png", "image/jpeg"
ODT = "application/vnd.oasis.opendocument.text"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
LABELS = {PDF: "PDF", PNG: "PNG", JPEG: "JPEG", ODT: "ODT", DOCX: "DOCX", XLSX: "XLSX"}
EXTENSIONS = {".pdf": PDF, ".png": PNG, ".jpg": JPEG, ".jpeg": JPEG, ".odt": ODT,
              ".docx": DOCX, ".xlsx": XLSX}
ACCEPTED = "PDF, ODT, DOCX, XLSX, PNG ou JPEG"
MAX_FILENAME = 255
# control characters, and the bidirectional overrides that make « fdp.exe » show as « exe.pdf »
_HIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


@dataclass(frozen=True)
class UploadStore:
    """Where files go and how large one may be (``ODD17_UPLOAD_DIR``,
    ``ODD17_UPLOAD_MAX_BYTES``), handed to the use cases by their caller."""

    folder: Path
    max_bytes: int

    @classmethod
    def from_settings(cls) -> UploadStore:
        from odd17.settings import get_settings

        settings = get_settings()
        return cls(folder=settings.upload_dir, max_bytes=settings.upload_max_bytes)

    def path_of(self, sha256: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):  # only ever a hash: never a traversal
            raise ValueError(f"not a SHA-256: {sha256!r}")
        return self.folder / sha256[:2] / sha256


class AttachmentView(TypedDict):
    id: int
    kind: str
    filename: str
    size: int
    media_type: str
    sha256: str
    uploaded_by: str
    uploaded_at: str


def view(a: Attachment) -> AttachmentView:
    return {"id": a.id, "kind": a.kind.value, "filename": a.filename, "size": a.size,
            "media_type": a.media_type, "sha256": a.sha256, "uploaded_by": a.uploaded_by,
            "uploaded_at": a.uploaded_at.isoformat()}


def display_name(name: str) -> str:
    """The file's name fit to show: the last path component, NFC, without control or
    direction-changing characters, at most 255 characters (keeping the extension)."""
    base = re.split(r"[/\\]", unicodedata.normalize("NFC", name or ""))[-1]
    base = _HIDDEN.sub("", base).strip().strip(".") or "fichier"
    if len(base) > MAX_FILENAME:
        stem, dot, ext = base.rpartition(".")
        ext = ext[:20] if dot and stem else ""
        base = base[:MAX_FILENAME - len(ext) - 2] + ("…." + ext if ext else "…")
    return base


def detect_media_type(path: Path) -> str | None:
    """The accepted type the content is, or None."""
    with path.open("rb") as f:
        head = f.read(8)
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"PK\x03\x04"):
        return _zip_type(path)
    return None


def _zip_type(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "mimetype" in names:
                with archive.open("mimetype") as part:  # a few bytes, whatever it claims
                    if part.read(len(ODT) + 1) == ODT.encode():
                        return ODT
                return None
            if "[Content_Types].xml" in names:
                if any(n.startswith("word/") for n in names):
                    return DOCX
                if any(n.startswith("xl/") for n in names):
                    return XLSX
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError,
            NotImplementedError, RuntimeError):
        return None
    return None


def _kind(value: str) -> AttachmentKind:
    try:
        return AttachmentKind(value)
    except ValueError:
        allowed = ", ".join(k.value for k in AttachmentKind)
        raise DomainError(f"type de pièce « {value[:50]} » inconnu (possibles : {allowed})"
                          ) from None


def _receive(store: UploadStore, content: BinaryIO, shown: str) -> tuple[Path, str, int]:
    """Copy the stream to a temporary file in the upload folder, hashing it; refuse it as soon
    as it passes the limit."""
    store.folder.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    fd, name = tempfile.mkstemp(prefix=".upload-", dir=store.folder)
    temp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := content.read(CHUNK):
                size += len(chunk)
                if size > store.max_bytes:
                    raise DomainError(f"fichier « {shown} » trop volumineux : au plus "
                                      f"{_human(store.max_bytes)}")
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    if size == 0:
        temp.unlink(missing_ok=True)
        raise DomainError(f"fichier « {shown} » vide")
    return temp, digest.hexdigest(), size


def _human(n: int) -> str:
    for unit, factor in (("Mo", 1024 * 1024), ("Ko", 1024)):
        if n >= factor:
            return f"{n / factor:.1f}".replace(".", ",").replace(",0", "") + f" {unit}"
    return f"{n} octets"


def _checked_type(temp: Path, shown: str) -> str:
    media_type = detect_media_type(temp)
    if media_type is None:
        raise DomainError(f"fichier « {shown} » refusé : son contenu n'est pas un {ACCEPTED}")
    claimed = EXTENSIONS.get(Path(shown).suffix.lower())
    if claimed is not None and claimed != media_type:
        raise DomainError(f"fichier « {shown} » refusé : son nom annonce un "
                          f"{LABELS[claimed]} mais son contenu est un {LABELS[media_type]}")
    return media_type


def add_attachment(uow: UnitOfWork, store: UploadStore, draft_id: int, email: str, kind: str,
                   filename: str, content: BinaryIO) -> AttachmentView:
    """Attach a file to a draft (its lead or a co-applicant). The bytes are written before the
    row: a rolled-back transaction leaves at most an unreferenced file, never a row without
    its file."""
    who = email.strip().lower()
    draft = draft_for(uow.session, draft_id, who)
    if draft.application_id is not None:
        raise DomainError("ce brouillon a été déposé : ses pièces ne changent plus")
    piece = _kind(kind)
    shown = display_name(filename)
    temp, sha256, size = _receive(store, content, shown)
    try:
        media_type = _checked_type(temp, shown)
        final = store.path_of(sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temp, final)  # same bytes if it existed: replacing is harmless
    finally:
        temp.unlink(missing_ok=True)
    row = Attachment(draft_id=draft.id, kind=piece, filename=shown, sha256=sha256, size=size,
                     media_type=media_type, uploaded_by=who, uploaded_at=uow.now)
    uow.session.add(row)
    uow.session.flush()
    return view(row)


def draft_attachments(uow: UnitOfWork, draft_id: int, email: str) -> list[AttachmentView]:
    draft = draft_for(uow.session, draft_id, email)
    return [view(a) for a in uow.session.scalars(
        select(Attachment).where(Attachment.draft_id == draft.id).order_by(Attachment.id))]


def application_attachments(uow: UnitOfWork, reference: str,
                            email: str) -> list[AttachmentView]:
    app = application_for(uow.session, reference, email)
    return [view(a) for a in uow.session.scalars(
        select(Attachment).where(Attachment.application_id == app.id).order_by(Attachment.id))]


def remove_attachment(uow: UnitOfWork, draft_id: int, email: str, attachment_id: int) -> None:
    """Take a file off a draft not yet submitted. The row is detached, not deleted: a
    submission under way links the files it counted, by id, whatever happens meanwhile."""
    draft = draft_for(uow.session, draft_id, email)
    if draft.application_id is not None:
        raise DomainError("ce brouillon a été déposé : ses pièces ne changent plus")
    table = Attachment.__table__
    moved = rows_matched(uow.session.execute(
        update(table).where(table.c.id == attachment_id, table.c.draft_id == draft.id,
                            table.c.application_id.is_(None)).values(draft_id=None)))
    if moved != 1:
        raise NotFound(ATTACHMENT_NOT_FOUND)


def open_attachment(uow: UnitOfWork, store: UploadStore, attachment_id: int,
                    email: str) -> tuple[AttachmentView, Path]:
    """The file and its description, for those who may see its draft or its application."""
    row = uow.session.get(Attachment, attachment_id)
    if row is None or not _may_read(uow, row, email.strip().lower()):
        raise NotFound(ATTACHMENT_NOT_FOUND)
    path = store.path_of(row.sha256)
    if not path.is_file():
        raise NotFound(f"{ATTACHMENT_NOT_FOUND} : le fichier manque dans le stockage")
    return view(row), path


def _may_read(uow: UnitOfWork, row: Attachment, email: str) -> bool:
    if row.draft_id is not None:
        draft = uow.session.get(Draft, row.draft_id)
        if draft is not None and (is_draft_lead(draft, email)
                                  or is_draft_member(uow.session, draft, email)):
            return True
    if row.application_id is not None:
        app = uow.session.get(Application, row.application_id)
        if app is not None:
            try:
                application_for(uow.session, app.reference, email)
                return True
            except NotFound:
                return False
    return False


# --- staff (the fund manager's workspace: its route's rule checks the role) ---------------------

def attachments_of(uow: UnitOfWork, reference: str) -> list[AttachmentView]:
    """The files of an application, for staff."""
    app = application_by_reference(uow.session, reference)
    return [view(a) for a in uow.session.scalars(
        select(Attachment).where(Attachment.application_id == app.id).order_by(Attachment.id))]


def open_for_staff(uow: UnitOfWork, store: UploadStore, reference: str,
                   attachment_id: int) -> tuple[AttachmentView, Path]:
    """One file of that application, for staff; another application's is NotFound."""
    app = application_by_reference(uow.session, reference)
    row = uow.session.get(Attachment, attachment_id)
    if row is None or row.application_id != app.id:
        raise NotFound(ATTACHMENT_NOT_FOUND)
    path = store.path_of(row.sha256)
    if not path.is_file():
        raise NotFound(f"{ATTACHMENT_NOT_FOUND} : le fichier manque dans le stockage")
    return view(row), path
