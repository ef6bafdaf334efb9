"""Finding an application by its reference: the one lookup every service uses."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.base import ExecutableOption

from models.application import Application
from models.errors import NotFound


@lru_cache
def _query(lock: bool, fresh: bool) -> Select[tuple[Application]]:
    """The lookup, built once: a statement object keeps its cache key, which SQLAlchemy would
    otherwise compute again at each call (~30 % of the lookup's CPU time, an approval's first
    read: bench/README.md)."""
    query = select(Application).where(Application.reference == bindparam("reference"))
    if lock:
        query = query.with_for_update(of=Application)
    if lock or fresh:
        query = query.execution_options(populate_existing=True)
    return query


def application_by_reference(session: Session, reference: str, *, lock: bool = False,
                             fresh: bool = False,
                             options: Sequence[ExecutableOption] = ()) -> Application:
    """The application named by ``reference`` (spaces and case ignored), or NotFound.

    ``lock``: read it under its row lock (PostgreSQL; SQLite's BEGIN IMMEDIATE already
    serialises writers), so that what the caller checks stays true until its transaction ends.
    ``fresh``: reload it from the database even if the session holds it (implied by ``lock``).
    ``options``: loader options (e.g. ``selectinload`` of its history)."""
    query = _query(lock, fresh)
    if options:
        query = query.options(*options)
    app = session.scalars(query, {"reference": reference.strip().upper()}).first()
    if app is None:
        raise NotFound(f"aucun dossier de référence « {reference} »")
    return app
