"""The finance officer's workspace (issue 14): the live figures of the envelope and the
ledger check, the tranches due with a payment form each, a bank statement's upload (the
disbursement flow's reader, line by line) and the open-data exports. Each page calls its
service (finance, audit, ledger, payments, exports); the ledger itself, filtered and paged, with
its CSV download (finance.ledger_page, ledger_batch). The route's rule (policy.py) lets the
finance role in, nobody else."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import tempfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.datastructures import FormData, UploadFile

from models import DomainError, NotFound
from odd17 import reports
from odd17.services import audit, exports, ledger, payments
from odd17.services.access import Principal
from odd17.services.finance import (
    LEDGER_CSV_HEADER,
    LEDGER_FIELDS,
    Before,
    LedgerQuery,
    finance_report,
    ledger_batch,
    ledger_csv_row,
    ledger_page,
    parse_ledger_query,
    tranches_due,
)
from odd17.uow import Context, Runner, UnitOfWork
from odd17.web.deps import Guard, check_csrf, run, uow
from odd17.web.templating import page
from rules.labels import ENTRY_KIND_LABELS, OBJECTIVE_LABELS, objective_label
from rules.money import parse_amount
from rules.text import sort_key

router = APIRouter(prefix="/finances")
CSRF = [Depends(check_csrf)]
STATEMENT_MAX = 5 * 1024 * 1024  # a bank statement, not an archive
STATEMENT_KINDS = (".csv", ".jsonl")
DONE = {"versement": "Versement enregistré.", "deja": "Ce versement était déjà enregistré : "
        "rien de nouveau."}


@router.get("", name="finance_home")
def finance_home(request: Request,
                 _: Principal | None = Guard("finance_home")) -> HTMLResponse:
    try:
        with uow(request) as unit:
            report = finance_report(unit, on=unit.today)
            breaches = audit.check(unit)
    except NotFound as exc:  # the envelope is not open yet
        return page(request, "message.html", {"title": "Finances", "text": str(exc)})
    threshold = f"{Decimal(report['alert_threshold']) * 100:.0f} %"
    # regions in French order, as the HTML report (« Île-de-France » before « Normandie »)
    report["by_region"] = sorted(report["by_region"], key=lambda r: sort_key(r["key"]))
    return page(request, "finances_home.html", {
        "report": report, "breaches": breaches, "threshold": threshold,
        "objective_label": objective_label, **_charts(report)})


def _charts(report: Any) -> dict[str, str]:
    """The report's SVG charts (no script, no style attribute: the CSP holds)."""
    as_of = dt.date.fromisoformat(report["as_of"])
    return {
        "history_svg": reports.history_svg(report["history"], as_of=as_of),
        "objective_svg": reports.split_svg(report["by_objective"], ident="obj",
                                           title="Engagé et versé par objectif principal",
                                           label=objective_label),
        "region_svg": reports.split_svg(report["by_region"], ident="reg",
                                        title="Engagé et versé par région",
                                        label=reports._region),
    }


@router.get("/tranches", name="finance_tranches")
def finance_tranches(request: Request,
                     _: Principal | None = Guard("finance_tranches")) -> HTMLResponse:
    done = DONE.get(request.query_params.get("fait", ""))
    return _tranches_page(request, done=done)


def _tranches_page(request: Request, *, done: str | None = None, errors: Any = None,
                   values: Any = None, status_code: int = 200) -> HTMLResponse:
    with uow(request) as unit:
        rows = tranches_due(unit, unit.today)
        day = unit.today
    errors = errors or {}
    shown = {f"{r['reference']}/{r['tranche']}" for r in rows}
    # a refusal on a tranche the list does not show (not due, paid meanwhile): said on top
    elsewhere = [f"{key} : {message}" for key, found in errors.items() if key not in shown
                 for message in found.values()]
    return page(request, "finances_tranches.html", {
        "rows": rows, "done": done, "errors": errors, "values": values or {},
        "elsewhere": elsewhere, "today": day.isoformat()}, status_code=status_code)


def _str(form: FormData, name: str, limit: int = 200) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def _payment(form: FormData) -> tuple[dict[str, str], dict[str, Any]]:
    """The form's errors (field -> French message) and its values, parsed."""
    errors: dict[str, str] = {}
    parsed: dict[str, Any] = {}
    text = _str(form, "amount")
    if text:
        try:
            parsed["amount"] = parse_amount(text)
        except ValueError as exc:
            errors["amount"] = str(exc)
    else:
        parsed["amount"] = None  # what is left of the tranche
    try:
        parsed["paid_on"] = dt.date.fromisoformat(_str(form, "paid_on"))
    except ValueError:
        errors["paid_on"] = "date de paiement invalide : attendu une date (AAAA-MM-JJ)"
    parsed["payment_reference"] = _str(form, "payment_reference", 100)
    if not parsed["payment_reference"]:
        errors["payment_reference"] = "la référence de paiement est obligatoire"
    return errors, parsed


@router.post("/tranches/{reference}/{number}", name="finance_pay", dependencies=CSRF)
async def finance_pay(request: Request, reference: str, number: str,
                      _: Principal | None = Guard("finance_pay")) -> Response:
    if not number.isdigit() or len(number) > 2 or len(reference) > 30:
        raise HTTPException(404)
    form = await request.form()
    key = f"{reference}/{number}"
    errors, parsed = _payment(form)
    values = {key: {name: _str(form, name) for name in ("amount", "paid_on",
                                                          "payment_reference")}}
    if not errors:
        try:
            with uow(request) as unit:
                result = ledger.pay(unit, reference, int(number), parsed["payment_reference"],
                                    paid_on=parsed["paid_on"], amount=parsed["amount"])
        except NotFound:
            raise HTTPException(404) from None
        except DomainError as exc:
            errors = {"form": str(exc)}
        else:
            target = request.url_for("finance_tranches").include_query_params(
                fait="versement" if result.recorded else "deja")
            return RedirectResponse(str(target), status_code=303)
    return _tranches_page(request, errors={key: errors}, values=values, status_code=400)


@router.get("/releve", name="finance_statement_form")
def finance_statement_form(request: Request,
                           _: Principal | None = Guard("finance_statement_form")
                           ) -> HTMLResponse:
    return page(request, "finances_releve.html", {"tally": None, "error": None})


@router.post("/releve", name="finance_statement", dependencies=CSRF)
async def finance_statement(request: Request,
                            _: Principal | None = Guard("finance_statement")) -> HTMLResponse:
    form = await request.form()
    upload = form.get("statement")
    error = None
    if not isinstance(upload, UploadFile) or not upload.filename:
        error = "choisissez le fichier du relevé (CSV ou JSONL)"
    elif Path(upload.filename).suffix.lower() not in STATEMENT_KINDS:
        error = (f"« {upload.filename[:100]} » : format non pris en charge, attendu un "
                 "fichier .csv ou .jsonl")
    if error is None:
        assert isinstance(upload, UploadFile) and upload.filename
        data = await upload.read(STATEMENT_MAX + 1)
        if len(data) > STATEMENT_MAX:
            error = "relevé trop volumineux : au plus 5 Mo"
    if error is not None:
        return page(request, "finances_releve.html", {"tally": None, "error": error},
                    status_code=400)
    assert isinstance(upload, UploadFile) and upload.filename
    results = _record_statement(request, Path(upload.filename).name[:100], data)
    return page(request, "finances_releve.html", {"tally": results, "error": None})


def _record_statement(request: Request, filename: str, data: bytes) -> dict[str, Any]:
    """The statement read as the disbursement flow reads it (from a file of the same name),
    then recorded batch by batch; each line's result, in the file's order."""
    with tempfile.TemporaryDirectory(prefix="odd17-releve-") as folder:
        # a name of our own (the browser's may hold anything), its type kept for the reader
        path = Path(folder) / f"releve{Path(filename).suffix.lower()}"
        path.write_bytes(data)
        orders = payments.read_orders(path)
    session = getattr(request.state, "session", None)
    actor = f"web:{session.principal.email}" if session else "web"
    tally = payments.record(Runner(request.app.state.engine,
                                   Context.from_settings(actor, clock=request.app.state.clock)),
                            orders)
    refused = {r["source"]: r["error"] for r in tally.refused}
    lines = [{"source": source.replace(str(path), filename),
              "error": refused.get(source)} for source, _ in orders]
    return {"recorded": tally.recorded, "already": tally.already,
            "refused": len(tally.refused), "alert": tally.alert_raised, "lines": lines}


@router.get("/exports/scdl.csv", name="finance_export_scdl")
def finance_export_scdl(request: Request,
                        _: Principal | None = Guard("finance_export_scdl")) -> Response:
    return _export(request, "scdl.csv", "text/csv; charset=utf-8", _scdl)


@router.get("/exports/360giving.json", name="finance_export_360giving")
def finance_export_360giving(request: Request,
                             _: Principal | None = Guard("finance_export_360giving")
                             ) -> Response:
    return _export(request, "360giving.json", "application/json",
                   lambda unit: json.dumps(exports.giving360(unit), ensure_ascii=False,
                                           indent=2))


def _scdl(unit: UnitOfWork) -> str:
    """The SCDL file through the exporter's own writer (its checks included)."""
    with tempfile.TemporaryDirectory(prefix="odd17-scdl-") as folder:
        path = Path(folder) / "scdl.csv"
        exports.write_scdl(unit, path)
        return path.read_text("utf-8")


def _export(request: Request, filename: str, media_type: str, build: Any) -> Response:
    try:
        with uow(request) as unit:
            body = build(unit)
    except DomainError as exc:  # e.g. nothing to publish, or a row the schema refuses
        return page(request, "message.html", {"title": "Export impossible", "text": str(exc)},
                    status_code=409)
    return Response(body, media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


# --- the ledger, entry by entry -----------------------------------------------------------

def _ledger_query(request: Request) -> tuple[LedgerQuery, dict[str, str], dict[str, str]]:
    """The filters asked for, each bad one's French message, and the text typed (shown back)."""
    raw = {name: request.query_params.get(name, "")[:200] for name in LEDGER_FIELDS}
    query, errors = parse_ledger_query(raw)
    return query, errors, raw


def page_links(current: int, pages: int) -> list[int | None]:
    """The page numbers linked: the first, the last and two on each side of the current one;
    None where numbers are left out."""
    shown = sorted({1, pages, *range(max(1, current - 2), min(pages, current + 2) + 1)})
    links: list[int | None] = []
    for number in shown:
        if links and number - (links[-1] or 0) > 1:
            links.append(None)
        links.append(number)
    return links


@router.get("/grand-livre", name="finance_ledger")
def finance_ledger(request: Request,
                   _: Principal | None = Guard("finance_ledger")) -> HTMLResponse:
    query, errors, raw = _ledger_query(request)
    result = run(request, lambda unit: ledger_page(unit, query))
    # the page links and the download keep the filters (none when one is bad: all is shown)
    kept = [] if errors else [(k, v) for k, v in raw.items() if k != "page" and v.strip()]
    return page(request, "finances_grand_livre.html", {
        "ledger": result, "errors": errors, "raw": raw, "kept": kept,
        "links": page_links(result["page"], result["pages"]), "kinds": ENTRY_KIND_LABELS,
        "objectives": OBJECTIVE_LABELS}, status_code=400 if errors else 200)


@router.get("/grand-livre.csv", name="finance_ledger_csv")
def finance_ledger_csv(request: Request,
                       _: Principal | None = Guard("finance_ledger_csv")) -> Response:
    query, errors, _raw = _ledger_query(request)
    if errors:
        text = "; ".join(f"{LEDGER_NAMES[k]} : {m}" for k, m in errors.items())
        return page(request, "message.html", {"title": "Export impossible",
                                              "text": f"Filtre invalide : {text}."},
                    status_code=400)
    return StreamingResponse(_ledger_csv(request, query), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition":
                                      'attachment; filename="grand-livre.csv"'})


LEDGER_NAMES = {"start": "du", "end": "au", "kind": "nature", "search": "recherche",
                "objective": "objectif", "region": "région", "page": "page"}
CSV_BATCH = 2000


def _ledger_csv(request: Request, query: LedgerQuery) -> Iterator[str]:
    """The CSV, batch by batch: one short unit of work per batch, nothing held in memory."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(LEDGER_CSV_HEADER)
    before: Before | None = None
    while True:
        with uow(request) as unit:
            batch = ledger_batch(unit, query, before=before, size=CSV_BATCH)
        writer.writerows(ledger_csv_row(line) for line in batch)
        yield out.getvalue()
        out.seek(0)
        out.truncate()
        if len(batch) < CSV_BATCH:
            return
        before = (dt.datetime.fromisoformat(batch[-1]["at"]), batch[-1]["number"])


__all__ = ["router"]
