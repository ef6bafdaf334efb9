"""The JSON API's actions (issue 14), added to the ``/api/v1`` application of api.py: the fund
manager's (evaluate, assign reviewers automatically or chosen, an internal comment) and the
finance officer's (record a payment, record a bank statement in JSON Lines). Each endpoint
calls the use case the web page and the CLI call, nothing more, and is scoped like the web
page's rule in policy.py (admin is not a superset): manager actions for a token of the
manager role, payments for one of the finance role.

Answers: 422 for a body or parameter that cannot be read (French ``detail`` and one
``errors`` entry per field), 404 for an unknown application (the same for a reference that
is malformed: nothing to enumerate), 409 when the use case refuses in the present state
(already paid, envelope short, not eligible…) with its French reason. A payment reference
already recorded for the same tranche records nothing new and answers 200 (the CLI's
idempotency); a new payment answers 201. The committee's decisions are not here: they are
taken in a session of members present with a quorum (web /comite), not one call."""

from __future__ import annotations

import datetime as dt
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from models import DomainError, NotFound
from models.lookup import application_by_reference
from odd17.services import assignment, choosing, comments, eligibility, ledger, payments
from odd17.uow import Context, Runner, UnitOfWork
from odd17.web.api import ERRORS, Problem, _actor, _uow, model_of, scoped
from rules.money import as_str, parse_amount

MANAGER = frozenset({"manager"})     # policy.MANAGER_SPACE
FINANCE = frozenset({"finance"})     # policy.FINANCE_SPACE
STATEMENT_MAX = 5 * 1024 * 1024      # as the web's upload
NDJSON = "application/x-ndjson"
AMOUNT_PATTERN = r"^[0-9]{1,12}(\.[0-9]{1,2})?$"
UNKNOWN = "dossier inconnu"

REFUSED: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    404: {"model": Problem, "description": "Dossier inconnu"},
    409: {"model": Problem, "description": "Refusé dans l'état actuel (motif en français)"}}


# --- bodies and answers ---------------------------------------------------------------------

class Strict(BaseModel):
    """A body as the schema says, nothing more (spaces are the use cases' to trim: the schema
    must accept what the model accepts)."""
    model_config = ConfigDict(extra="forbid")


class ChosenReviewers(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"reviewers": ["a@eval.example.org", "b@eval.example.org"]}]})
    reviewers: list[Annotated[str, Field(min_length=1, max_length=320)]] = Field(
        min_length=1, max_length=50, description="Adresses des évaluateurs choisis")


class CommentIn(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"body": "RIB illisible, redemandé au porteur"}]})
    body: str = Field(min_length=1, max_length=comments.MAX_LENGTH,
                      description="Commentaire interne (jamais montré au porteur)")


class PaymentIn(Strict):
    """A payment on a tranche, as one line of a bank statement."""
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"reference": "ODD17-2026-0001", "tranche": 1, "payment_reference": "VIR-2027-0042",
         "date": "2027-01-15", "amount": "45000.00"}]})
    reference: str = Field(min_length=1, max_length=30, description="Référence du dossier")
    tranche: int = Field(ge=1, le=99, description="Numéro de la tranche (1, 2, 3…)")
    payment_reference: str = Field(min_length=1, max_length=100,
                                   description="Référence unique du virement (idempotence)")
    date: dt.date = Field(description="Date du paiement, AAAA-MM-JJ")
    amount: str | None = Field(None, pattern=AMOUNT_PATTERN, description=(
        "Montant versé en euros, en chaîne décimale (« 45000.50 », jamais un nombre JSON) ; "
        "absent : ce qui reste de la tranche"))

    @field_validator("date", mode="before")
    @classmethod
    def _iso_text(cls, value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError("date invalide : attendu une chaîne AAAA-MM-JJ")
        return value

    @field_validator("tranche", mode="before")
    @classmethod
    def _json_number(cls, value: Any) -> Any:
        if isinstance(value, bool | str):  # JSON Schema's integer: 2 or 2.0, never "2"
            raise ValueError("doit être un nombre entier")
        return value

    def decimal_amount(self) -> Decimal | None:
        try:
            return None if self.amount is None else parse_amount(self.amount)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None


class VerdictOut(BaseModel):
    """An item of ``odd17 evaluate --json``."""
    reference: str
    previous: str
    status: str
    failing: list[str]


class AssignmentOut(BaseModel):
    """``odd17 review assign --json``."""
    assigned: dict[str, list[str]]
    short: dict[str, int]


class PaymentOut(BaseModel):
    """``odd17 pay --json``."""
    reference: str
    tranche: int
    payment_reference: str
    recorded: bool
    amount: str


class RefusedLine(BaseModel):
    source: str
    error: str


class StatementOut(BaseModel):
    """The disbursement flow's tally of a statement."""
    recorded: int
    already_recorded: int
    refused: list[RefusedLine]
    alert: bool


CommentOut = model_of(comments.CommentView)


# --- helpers --------------------------------------------------------------------------------

def _reference(reference: str) -> str:
    if len(reference) > 30 or not reference.isprintable():
        raise HTTPException(404, UNKNOWN)
    return reference.strip().upper()


def _run(request: Request, use_case: Any) -> Any:
    """The use case in one unit of work of the token's owner: NotFound → 404, any other
    refusal → 409 with its French reason."""
    try:
        with _uow(request, _actor(request)) as unit:
            return use_case(unit)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except DomainError as exc:
        raise HTTPException(409, str(exc)) from None


# --- endpoints ------------------------------------------------------------------------------

def add_actions(api: FastAPI) -> None:
    """The write endpoints, on the API application of api.create_api."""
    manager = [Depends(scoped(MANAGER))]
    finance = [Depends(scoped(FINANCE))]

    @api.post("/applications/{reference}/evaluation", response_model=VerdictOut,
              responses=REFUSED, dependencies=manager,
              summary="(Ré)évaluer l'éligibilité d'un dossier (odd17 evaluate REF --json)")
    def evaluate(request: Request, reference: str) -> JSONResponse:
        ref = _reference(reference)

        def reevaluate(unit: UnitOfWork) -> list[eligibility.Verdict]:
            app_id = application_by_reference(unit.session, ref).id
            return eligibility.evaluate_batch(unit, [app_id], reevaluate=True)

        verdicts = _run(request, reevaluate)
        if not verdicts:
            raise HTTPException(409, f"{ref} est en instruction ou au-delà : son éligibilité "
                                "ne se réévalue plus")
        v = verdicts[0]
        return JSONResponse({"reference": v.reference, "previous": v.previous,
                             "status": v.status, "failing": v.failing})

    @api.post("/applications/{reference}/assignment", response_model=AssignmentOut,
              responses=REFUSED, dependencies=manager,
              summary="Désigner les évaluateurs automatiquement (odd17 review assign REF)")
    def assign_auto(request: Request, reference: str) -> JSONResponse:
        ref = _reference(reference)

        def assign_one(unit: UnitOfWork) -> assignment.Assignment:
            application_by_reference(unit.session, ref)  # NotFound for an unknown reference
            return assignment.assign(unit, [ref])

        result = _run(request, assign_one)
        if ref in result.short:
            raise HTTPException(409, f"{ref} : pas assez d'évaluateurs disponibles sans conflit "
                                f"d'intérêts ({result.short[ref]}) ; rien n'a été enregistré")
        if not result.assigned.get(ref):
            raise HTTPException(409, f"{ref} n'est pas éligible : on ne lui désigne pas "
                                "d'évaluateurs")
        return JSONResponse({"assigned": result.assigned, "short": result.short})

    @api.post("/applications/{reference}/reviewers", response_model=AssignmentOut,
              responses=REFUSED, dependencies=manager,
              summary="Désigner les évaluateurs choisis")
    def assign_chosen(request: Request, reference: str, body: ChosenReviewers) -> JSONResponse:
        ref = _reference(reference)
        chosen = _run(request, lambda unit: choosing.assign_chosen(unit, ref, body.reviewers))
        return JSONResponse({"assigned": {ref: chosen}, "short": {}})

    @api.post("/applications/{reference}/comments", response_model=CommentOut,
              status_code=201, responses=REFUSED, dependencies=manager,
              summary="Ajouter un commentaire interne")
    def comment(request: Request, reference: str, body: CommentIn) -> JSONResponse:
        ref = _reference(reference)
        made = _run(request, lambda unit: comments.add_comment(unit, ref, body.body))
        return JSONResponse(made, status_code=201)

    @api.post("/payments", response_model=PaymentOut, status_code=201,
              responses={**REFUSED, 200: {"model": PaymentOut, "description":
                                          "Référence de paiement déjà enregistrée pour cette "
                                          "tranche : rien de nouveau"}},
              dependencies=finance, summary="Enregistrer le versement d'une tranche "
              "(odd17 pay --json)")
    def pay(request: Request, body: PaymentIn) -> JSONResponse:
        amount = body.decimal_amount()
        if len(body.reference) > 30 or not body.reference.isprintable():
            raise HTTPException(404, UNKNOWN)
        result = _run(request, lambda unit: ledger.pay(
            unit, body.reference, body.tranche, body.payment_reference, paid_on=body.date,
            amount=amount))
        return JSONResponse({"reference": result.reference, "tranche": body.tranche,
                             "payment_reference": body.payment_reference,
                             "recorded": result.recorded, "amount": as_str(result.amount)},
                            status_code=201 if result.recorded else 200)

    @api.post("/payments/statement", response_model=StatementOut,
              responses={**ERRORS,
                         413: {"model": Problem, "description": "Relevé de plus de 5 Mo"},
                         415: {"model": Problem, "description": "Pas du JSON Lines"}},
              dependencies=finance, openapi_extra={"requestBody": {
                  "required": True, "description": "Une ligne JSON par versement : "
                  "{reference, tranche, payment_reference, date, amount?}",
                  "content": {NDJSON: {"schema": {"type": "string"}}}}},
              summary="Enregistrer un relevé bancaire (JSON Lines), ligne par ligne")
    async def statement(request: Request) -> JSONResponse:
        data = await _body(request)
        return JSONResponse(_record_statement(request, data))


async def _body(request: Request) -> bytes:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != NDJSON:
        raise HTTPException(415, f"relevé attendu en {NDJSON} (une ligne JSON par versement)")
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > STATEMENT_MAX:
            raise HTTPException(413, "relevé trop volumineux : au plus 5 Mo")
    return bytes(data)


def _record_statement(request: Request, data: bytes) -> dict[str, Any]:
    """The lines read by the disbursement flow's reader (from a file), then recorded batch by
    batch (payments.record); each refused line with its number and reason."""
    with tempfile.TemporaryDirectory(prefix="odd17-api-releve-") as folder:
        path = Path(folder) / "releve.jsonl"
        path.write_bytes(data)
        orders = payments.read_orders(path)
    parent = request.app.state.parent
    runner = Runner(parent.state.engine,
                    Context.from_settings(_actor(request), clock=parent.state.clock))
    tally = payments.record(runner, orders)  # a batch the database refuses: line by line
    refused = [{"source": r["source"].replace(f"{path}:", "ligne ").replace(str(path), "relevé"),
                "error": r["error"]} for r in tally.refused]
    return {"recorded": tally.recorded, "already_recorded": tally.already,
            "refused": refused, "alert": tally.alert_raised}


__all__ = ["add_actions"]
