"""Applications: init, submit, show, list, evaluate, demo."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from models.lifecycle import Status
from odd17.cli import app, render
from odd17.cli._common import (
    JsonFlag,
    check_references,
    cli_context,
    crash_guard,
    err,
    fail,
    out,
    print_json,
    progress_bar,
    read_uow,
    ready_engine,
    stream_json_list,
    user_errors,
)
from odd17.display import line
from rules.money import eur

# The database, the services and the settings are imported by the commands that use them.
if TYPE_CHECKING:
    from collections.abc import Iterable

    from odd17.services.intake import Outcome
    from odd17.settings import Settings

LIST_PAGE = 50  # rows per page of `odd17 list` (human output)


@app.command()
def init(as_json: JsonFlag = False) -> None:
    """Crée ou met à jour la base (Alembic) et charge la configuration du fonds. Idempotent."""
    from odd17.db import get_engine
    from odd17.runtime import actor, utcnow
    from odd17.services import finance, setup
    from odd17.settings import get_fund_config, get_settings, redact_url
    from odd17.uow import Context, open_uow

    with user_errors():
        config = get_fund_config()
        engine = get_engine()
        fund = setup.init_database(engine, config, utcnow())
        with open_uow(engine, Context.from_settings(actor("cli"), config=config)) as uow:
            report = finance.finance_report(uow)
    database = redact_url(get_settings().database_url)
    differs = fund.envelope != config.fund.envelope
    if as_json:
        print_json({"database": database, "schema": setup.head_revision(), "fund": fund.name,
                    "envelope": report["envelope"], "calls": [c.id for c in config.calls],
                    "configured_envelope_differs": differs})
        return
    out.print(line(f"Base prête ({database}, schéma {setup.head_revision()}) : "
                   f"{fund.name}, enveloppe {eur(Decimal(report['envelope']))}, "
                   f"{len(config.calls)} appel(s) à projets."))
    if differs:
        err.print(line((f"L'enveloppe configurée ({eur(config.fund.envelope)}) diffère de "
                        f"l'enveloppe initiale ({eur(fund.envelope)}) : le grand livre fait "
                        "foi ; pour l'abonder, utilisez « odd17 topup ».", "yellow")))


@app.command()
def submit(
    paths: Annotated[list[Path], typer.Argument(help="Fichiers .json/.jsonl ou dossiers.")],
    as_json: JsonFlag = False,
) -> None:
    """Dépose des dossiers : contrôle du format, enregistrement, puis éligibilité."""
    from odd17.settings import get_settings

    settings = get_settings()  # outside the guard: main() reports settings errors
    with crash_guard("submit"):
        _submit(paths, as_json, settings)


def _submit(paths: list[Path], as_json: bool, settings: Settings) -> None:
    from odd17.services import intake
    from odd17.services.pipeline import submit_and_evaluate
    from odd17.uow import Runner

    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        fail(f"fichier ou dossier introuvable : {', '.join(missing)}")
    with user_errors():
        runner = Runner(ready_engine(), cli_context())
        bar = not as_json and err.is_terminal
        with progress_bar(intake.count_documents(paths) if bar else 0, "Dépôt",
                          bar) as advance:
            outcomes = submit_and_evaluate(
                runner, intake.Documents(tuple(paths), settings.language),
                language=settings.language, batch_size=settings.batch_size, progress=advance,
                worker=settings.submit_worker,
            )
            # streamed: each batch's outcomes are written once it is committed
            refused = (_stream_outcomes if as_json else _render_outcomes)(outcomes)
    raise typer.Exit(1 if refused else 0)


def _stream_outcomes(outcomes: Iterable[Outcome]) -> int:
    """The outcomes as one JSON list, byte for byte what print_json writes, written as they
    come (the C encoder for the strings: the indenting pure-Python one costs ~40 µs a row).
    If a batch fails, the list is closed on what was stored before it (then exit 2)."""
    import json
    import sys

    encode = json.JSONEncoder(ensure_ascii=False).encode

    def nested(items: list[str]) -> str:  # a list two levels deep, as indent=2 lays it out
        return "[\n" + ",\n".join(f"      {item}" for item in items) + "\n    ]" \
            if items else "[]"

    write, refused, started = sys.stdout.write, 0, False
    try:
        for o in outcomes:
            refused += o.status == "refused"
            errors = [json.dumps(e, ensure_ascii=False, indent=2).replace("\n", "\n      ")
                      for e in o.errors]
            write(("[\n" if not started else ",\n")
                  + f'  {{\n    "source": {encode(o.source)},\n'
                  f'    "reference": {encode(o.reference)},\n'
                  f'    "status": {encode(o.status)},\n'
                  f'    "errors": {nested(errors)},\n'
                  f'    "duplicate": {encode(o.duplicate)},\n'
                  f'    "failing": {nested([encode(rule) for rule in o.failing])}\n  }}')
            started = True
    finally:
        write("\n]\n" if started else "[]\n")
    return refused


def _render_outcomes(outcomes: Iterable[Outcome]) -> int:
    done = list(outcomes)  # a table needs every row for its widths
    render.outcomes(done)
    return sum(o.status == "refused" for o in done)


@app.command()
def show(reference: str, as_json: JsonFlag = False) -> None:
    """Affiche un dossier : statut, éligibilité règle par règle, historique."""
    from odd17.services import queries

    with user_errors(), read_uow() as uow:
        detail = queries.application_detail(uow, reference)
        policy, zone = uow.config.review, uow.context.timezone
    if as_json:
        print_json(detail)
        return
    render.application(detail, policy, zone)


@app.command("list")
def list_(
    status: Annotated[Status | None, typer.Option(help="Filtrer par statut.")] = None,
    limit: Annotated[int | None, typer.Option(
        "--limit", min=1, help=f"Dossiers par page (défaut : {LIST_PAGE} ; avec --json, "
        "tous sauf si --limit ou --page est donné).")] = None,
    page: Annotated[int | None, typer.Option("--page", min=1, help="Numéro de la page "
                                             "(défaut : 1).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Liste les dossiers, par pages (--limit, --page) ; --json les donne tous par défaut."""
    from odd17.services import queries

    json_paged = limit is not None or page is not None
    limit = limit or LIST_PAGE
    page = page or 1
    offset = (page - 1) * limit
    with user_errors(), read_uow() as uow:
        if as_json:
            rows = queries.iter_applications(uow, status, limit=limit if json_paged else None,
                                             offset=offset if json_paged else 0)
            stream_json_list(rows)
            return
        total = queries.count_applications(uow, status)
        rows = queries.iter_applications(uow, status, limit=limit, offset=offset)
        render.application_page(rows, total=total, page=page, limit=limit, offset=offset)


@app.command()
def evaluate(
    references: Annotated[list[str] | None, typer.Argument(help="Dossiers à réévaluer.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Réévaluer tous les dossiers "
                                       "pas encore en instruction (après un changement de "
                                       "politique).")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Évalue l'éligibilité des dossiers en attente, ou réévalue après un changement de règles."""
    from odd17.services.eligibility import REEVALUABLE
    from odd17.services.pipeline import evaluate_references
    from odd17.settings import get_settings
    from odd17.uow import Runner, open_uow

    settings = get_settings()
    with user_errors():
        runner = Runner(ready_engine(), cli_context())
        if references:
            with open_uow(runner.engine, runner.context) as uow:
                check_references(uow.session, references, allowed=REEVALUABLE,
                                 why="seuls les dossiers déposés, éligibles ou inéligibles "
                                     "sont (ré)évalués")
        verdicts = evaluate_references(
            runner, [r.strip().upper() for r in references] if references else None,
            batch_size=settings.batch_size, reevaluate=all_ or bool(references),
        )
    if as_json:
        print_json([
            {"reference": v.reference, "previous": v.previous, "status": v.status,
             "failing": v.failing}
            for v in verdicts
        ])
        return
    render.verdicts(verdicts)


@app.command()
def demo(
    folder: Annotated[Path, typer.Option("--dir", help="Dossier de la démonstration "
                                         "(sa base y est recréée).")] = Path("odd17-demo"),
) -> None:
    """Le cycle sur les dossiers d'exemple : SQLite, Prefect éphémère, résumé lisible."""
    from rich.console import Console

    from odd17 import demo as demo_module

    with user_errors():  # the demo prints its own sample data with rich markup
        raise typer.Exit(demo_module.run(folder, Console(highlight=False)))
