"""Finding an application by its reference: the one lookup every service uses."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.sql.base import ExecutableOption

from models.application import Application
from models.errors import NotFound


def application_by_reference(session: Session, reference: str, *, lock: bool = False,
                             fresh: bool = False,
                             options: Sequence[ExecutableOption] = ()) -> Application:
    """The application named by ``reference`` (spaces and case ignored), or NotFound.

    ``lock``: read it under its row lock (PostgreSQL; SQLite's BEGIN IMMEDIATE already
    serialises writers), so that what the caller checks stays true until its transaction ends.
    ``fresh``: reload it from the database even if the session holds it (implied by ``lock``).
    ``options``: loader options (e.g. ``selectinload`` of its history)."""
    query = select(Application).where(Application.reference == reference.strip().upper())
    if options:
        query = query.options(*options)
    if lock:
        query = query.with_for_update(of=Application)
    if lock or fresh:
        query = query.execution_options(populate_existing=True)
    app = session.scalars(query).first()
    if app is None:
        raise NotFound(f"aucun dossier de référence « {reference} »")
    return app
