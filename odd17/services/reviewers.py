"""Reviewers and committee members (README, « Committee review »): add one, import a file of
them, list them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import select
from stdnum.fr import siren as siren_checker

from models import DomainError, Reviewer
from odd17.services import sources
from odd17.uow import UnitOfWork
from rules.document import Email, explain
from rules.identifiers import siren_of


class ReviewerIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: str = Field(min_length=1, max_length=200)
    email: Email
    siren: str | None = None
    interests: list[str] = Field(default_factory=list)
    committee: bool = False
    reviews: bool = True

    @field_validator("email")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()

    @field_validator("siren")
    @classmethod
    def _siren(cls, value: str | None) -> str | None:
        if not value:
            return None
        compact = "".join(value.split())
        if not siren_checker.is_valid(compact):
            raise ValueError(f"SIREN invalide : {value}")
        return compact

    @field_validator("interests", mode="before")
    @classmethod
    def _interests(cls, value: Any) -> Any:
        if isinstance(value, str):  # CSV: "123456789; 987654321"
            value = [v for v in value.replace(",", ";").split(";") if v.strip()]
        return value

    @field_validator("interests")
    @classmethod
    def _valid_sirens(cls, values: list[str]) -> list[str]:
        out = []
        for value in values:
            compact = siren_of(value) or value  # a SIRET names its SIREN
            if not siren_checker.is_valid(compact):
                raise ValueError(f"intérêt déclaré : SIREN invalide « {value} »")
            out.append(compact)
        return out

    @field_validator("committee", "reviews", mode="before")
    @classmethod
    def _flag(cls, value: Any) -> Any:
        if isinstance(value, str):
            folded = value.strip().casefold()
            if folded in ("oui", "yes", "true", "1", "x"):
                return True
            if folded in ("non", "no", "false", "0", ""):
                return False
        return value


def add_reviewer(uow: UnitOfWork, data: ReviewerIn) -> tuple[Reviewer, bool]:
    """Create or update (by email) a reviewer; returns it and whether it was created."""
    session = uow.session
    reviewer = session.scalars(select(Reviewer).where(Reviewer.email == data.email)).first()
    created = reviewer is None
    if reviewer is None:
        reviewer = Reviewer(email=data.email, created_at=uow.now, active=True)
        session.add(reviewer)
    reviewer.name, reviewer.siren, reviewer.interests = data.name, data.siren, data.interests
    reviewer.committee, reviewer.reviews = data.committee, data.reviews
    session.flush()
    return reviewer, created


@dataclass(slots=True)
class ImportReport:
    created: int = 0
    updated: int = 0
    refused: list[dict[str, str]] = field(default_factory=list)


def read_reviewers(path: Path) -> list[tuple[str, Any]]:
    """(source, row) per reviewer; a row that cannot be read is (source, its French error
    message). A file that cannot be read at all raises DomainError."""
    try:
        data = sources.read_bytes(path)
        records = (sources.csv_records(path, data) if path.suffix == ".csv"
                   else sources.json_array(path, data))
    except sources.SourceError as exc:
        raise DomainError(str(exc)) from exc
    return [(r.source, r.error if r.error is not None else r.data) for r in records]


def import_reviewers(uow: UnitOfWork, rows: list[tuple[str, Any]]) -> ImportReport:
    """Good rows are kept, each bad row is refused with what is wrong (rows are validated
    before anything is written)."""
    report = ImportReport()
    for source, row in rows:
        if isinstance(row, str):  # refused by the reader
            report.refused.append({"source": source, "errors": row})
            continue
        try:
            data = ReviewerIn.model_validate(row)
        except ValidationError as exc:
            report.refused.append({"source": source, "errors": "; ".join(
                f"{e['field']} : {e['message']}" for e in explain(exc))})
            continue
        _, created = add_reviewer(uow, data)
        if created:
            report.created += 1
        else:
            report.updated += 1
    return report


def list_reviewers(uow: UnitOfWork) -> list[dict[str, Any]]:
    """Reviewers and committee members, by e-mail (the ``--json`` shape of ``reviewers
    list``)."""
    return [{"email": r.email, "name": r.name, "siren": r.siren, "interests": r.interests,
             "committee": r.committee, "reviews": r.reviews}
            for r in uow.session.scalars(select(Reviewer).order_by(Reviewer.email))]
