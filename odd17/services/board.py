"""The fund manager's board (issue 14): applications by status with their counts, filtered
(call, objective, region, status, score range) and searched (reference, title, lead's name,
SIRET/RNA), one page at a time, all in SQL.

The score filter compares the mean of the reviews' recorded thousandths, in integers
(``Σ milli ≥ min × 1000 × n``): exact in both databases, and the same as the displayed score
to the thousandth. User text is returned as stored: the pages escape it."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, TypedDict

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import ColumnElement, Select, and_, func, or_, select

from models import Application, DomainError, Organisation, Review, Status
from odd17.uow import UnitOfWork
from rules.document import explain
from rules.labels import objective_label, status_label
from rules.money import as_str

Score = Annotated[Decimal, Field(ge=0, le=100)]


class BoardQuery(BaseModel):
    """What the board is asked for; every field optional. ``status``: one or several."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    call: str | None = None
    objective: str | None = None
    region: str | None = None
    status: list[Status] = Field(default_factory=list)
    score_min: Score | None = None
    score_max: Score | None = None
    search: str | None = Field(None, max_length=200)
    page: int = Field(1, ge=1)
    per_page: int = Field(25, ge=1, le=200)

    @field_validator("call", "objective", "region", "search")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("score_min", "score_max")
    @classmethod
    def _thousandths(cls, value: Decimal | None) -> Decimal | None:
        if value is not None and value != value.quantize(Decimal("0.001")):
            raise ValueError(f"au plus trois décimales, pas « {value} »")
        return value


def parse_query(raw: dict[str, Any]) -> BoardQuery:
    """The query from a form or the API; bad input raises DomainError naming each field."""
    try:
        query = BoardQuery.model_validate(raw)
    except ValidationError as exc:
        raise DomainError("; ".join(f"{e['field']} : {e['message']}"
                                    for e in explain(exc))) from None
    if (query.score_min is not None and query.score_max is not None
            and query.score_min > query.score_max):
        raise DomainError(f"score : le minimum ({query.score_min}) dépasse le maximum "
                          f"({query.score_max})")
    return query


class BoardRow(TypedDict):
    reference: str
    title: str
    status: str
    status_label: str
    call: str
    lead_name: str
    siret: str | None
    rna: str | None
    region: str
    objective: str | None
    objective_label: str
    requested_amount: str
    submitted_at: str
    score: str | None           # mean of the recorded weighted scores, three decimals
    reviews_done: int
    reviews_assigned: int


class Board(TypedDict):
    counts: dict[str, int]      # status -> count under every filter but the status one
    total: int                  # rows matching every filter
    page: int
    per_page: int
    pages: int
    rows: list[BoardRow]


def _scores() -> Any:
    """Per application: reviews assigned, reviews scored, sum of their thousandths."""
    return (select(Review.application_id.label("app_id"),
                   func.count().label("assigned"),
                   func.count(Review.weighted_milli).label("done"),
                   func.sum(Review.weighted_milli).label("milli"))
            .group_by(Review.application_id).subquery())


def _search(text: str) -> ColumnElement[bool]:
    """Reference, title, lead's name, SIRET or RNA (spaces ignored). Text is found as typed,
    or ignoring case as the database's ``lower`` does (SQLite's folds ASCII letters only).
    ``autoescape``: a ``%``, ``_`` or ``/`` typed is searched for literally."""
    lowered = text.lower()
    compact = "".join(text.split()).upper()
    clauses = [clause for column in (Application.reference, Application.title, Organisation.name)
               for clause in (column.contains(text, autoescape=True),
                              func.lower(column).contains(lowered, autoescape=True))]
    if compact:
        clauses += [Organisation.siret.contains(compact, autoescape=True),
                    func.upper(Organisation.rna).contains(compact, autoescape=True)]
    return or_(*clauses)


def _filters(query: BoardQuery, scores: Any) -> list[ColumnElement[bool]]:
    """Every filter but the status one."""
    found: list[ColumnElement[bool]] = []
    if query.call:
        found.append(Application.call_id == query.call)
    if query.objective:
        found.append(Application.primary_objective == query.objective)
    if query.region:
        found.append(Application.region == query.region)
    if query.search:
        found.append(_search(query.search))
    for bound, above in ((query.score_min, True), (query.score_max, False)):
        if bound is not None:
            milli = int(bound * 1000)
            total, count = scores.c.milli, scores.c.done
            found.append(and_(count > 0, total >= milli * count if above
                              else total <= milli * count))
    return found


def _base(scores: Any) -> Select[Any]:
    return (select(Application.id)
            .join(Organisation, Organisation.id == Application.lead_id)
            .outerjoin(scores, scores.c.app_id == Application.id))


def board(uow: UnitOfWork, query: BoardQuery) -> Board:
    """One page of the board, newest first, with the counts by status."""
    session = uow.session
    scores = _scores()
    filters = _filters(query, scores)
    counted = (_base(scores).where(*filters).with_only_columns(Application.status, func.count())
               .group_by(Application.status))
    counts = {str(s.value): 0 for s in Status}
    counts.update({str(Status(status)): n for status, n in session.execute(counted).tuples()})
    chosen = [s for s in query.status] or list(Status)
    total = sum(counts[s.value] for s in chosen)
    if query.status:
        filters.append(Application.status.in_(chosen))
    rows = session.execute(
        _base(scores).where(*filters)
        .with_only_columns(Application, Organisation.name, Organisation.siret,
                           Organisation.rna, scores.c.assigned, scores.c.done,
                           scores.c.milli)
        .order_by(Application.id.desc())
        .limit(query.per_page).offset((query.page - 1) * query.per_page)).all()
    return Board(counts=counts, total=total, page=query.page, per_page=query.per_page,
                 pages=max(1, -(-total // query.per_page)),
                 rows=[_row(*row) for row in rows])


def _row(app: Application, lead_name: str, siret: str | None, rna: str | None,
         assigned: int | None, done: int | None, milli: int | None) -> BoardRow:
    score = None
    if done and milli is not None:
        score = str((Decimal(milli) / done / 1000).quantize(Decimal("0.001")))
    return BoardRow(
        reference=app.reference, title=app.title, status=app.status.value,
        status_label=status_label(app.status.value), call=app.call_id, lead_name=lead_name,
        siret=siret, rna=rna, region=app.region, objective=app.primary_objective,
        objective_label=objective_label(app.primary_objective),
        requested_amount=as_str(app.requested_amount), submitted_at=app.submitted_at.isoformat(),
        score=score, reviews_done=done or 0, reviews_assigned=assigned or 0)
