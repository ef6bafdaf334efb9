"""What every command shares: the consoles, the error policy (messages and exit codes), the
engines, JSON output, progress display and the parsing of common options."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from odd17.display import console, line

# SQLAlchemy, Alembic, the services and the settings are imported by the functions that use
# them: ``odd17 --help`` and the commands that need no database start without them.
if TYPE_CHECKING:
    from sqlalchemy import Engine

    from models import Status
    from odd17.uow import Context, UnitOfWork

out = console()  # markup off: user text is printed as it is (odd17/display.py)
err = console(stderr=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Sortie JSON stable (voir README).")]


def fail(message: str, code: int = 2) -> NoReturn:
    err.print(line(("Erreur :", "bold red"), " ", message))
    raise typer.Exit(code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn every error a user can cause into a message and an exit code."""
    from sqlalchemy.exc import SQLAlchemyError

    from models import DomainError
    from odd17.settings import ConfigError, get_settings, hide_secrets, redact_url

    try:
        yield
    except (DomainError, ConfigError) as exc:
        fail(str(exc))
    except SQLAlchemyError as exc:
        detail = hide_secrets(str(getattr(exc, "orig", None) or exc).splitlines()[0])
        fail(f"base de données ({redact_url(get_settings().database_url)}) : {detail}")


CRASH = 3  # exit code of an unexpected error: never mistaken for "some documents refused"


@contextmanager
def crash_guard(command: str) -> Iterator[None]:
    """An unexpected exception becomes one French line naming a log file that holds the
    traceback, and exit code CRASH (a script can tell it from refusals and usage errors)."""
    try:
        yield
    # TyperException: the click errors (BadParameter, UsageError…) of the click Typer vendors
    except (typer.Exit, typer.Abort, typer.TyperException):
        raise
    except Exception as exc:  # the point is to catch what nobody expected
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        log = Path(tempfile.gettempdir()) / f"odd17-{command}-{stamp}-{os.getpid()}.log"
        try:
            log.write_text("".join(traceback.format_exception(exc)), "utf-8")
            where = f"détails dans {log}"
        except OSError:
            where = "détails non enregistrés"
        err.print(line(("Erreur inattendue", "bold red"),
                       f" pendant « odd17 {command} » ({type(exc).__name__}) ; {where}. "
                       "Signalez-la avec ce fichier."))
        raise typer.Exit(CRASH) from None


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")



# Flat rows (scalars only) in the layout of print_json's indent=2, by the C encoder: the
# pure-Python one that indent= selects takes ~40 µs a row, 2 s for 54,000 applications.
_FLAT_ROW = json.JSONEncoder(ensure_ascii=False, separators=(",\n    ", ": "))


def _row_text(row: Mapping[str, object]) -> str:
    body = _FLAT_ROW.encode(row)
    return "  {\n    " + body[1:-1] + "\n  }" if row else "  {}"


def stream_json_list(rows: Iterable[Mapping[str, object]], chunk: int = 1000) -> None:
    """A JSON list of flat rows written as it is read, byte for byte what print_json writes,
    without holding the list in memory."""
    write = sys.stdout.write
    pending: list[str] = []
    started = False
    for row in rows:
        pending.append(_row_text(row))
        if len(pending) >= chunk:
            write(("[\n" if not started else ",\n") + ",\n".join(pending))
            started, pending = True, []
    if pending:
        write(("[\n" if not started else ",\n") + ",\n".join(pending))
        started = True
    write("\n]\n" if started else "[]\n")


def existing_engine() -> Engine:
    """For the commands that only read: an absent database is a mistyped path or URL, not a
    first use, so it is refused rather than created empty (ready_engine creates it)."""
    from sqlalchemy import make_url
    from sqlalchemy.exc import ArgumentError

    from odd17.db import get_engine
    from odd17.services import setup
    from odd17.settings import get_settings, redact_url

    settings = get_settings()
    hint = "lancez « odd17 init » pour la créer, ou vérifiez ODD17_DATABASE_URL"
    try:
        url = make_url(settings.database_url)
    except ArgumentError:
        fail(f"ODD17_DATABASE_URL : adresse de base de données illisible ; {hint}")
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") \
            and not Path(url.database).exists():
        fail(f"base de données introuvable ({redact_url(settings.database_url)}) : {hint}")
    engine = get_engine()
    with user_errors():
        revision = setup.current_revision(engine)
    if revision is None:
        fail(f"la base {redact_url(settings.database_url)} n'a pas de schéma odd17 : {hint}")
    if not setup.is_head(revision):
        fail("le schéma de la base n'est pas à jour : lancez « odd17 init »")
    return engine


@contextmanager
def read_uow() -> Iterator[UnitOfWork]:
    """A unit of work on the existing database (refused when absent or outdated, see
    existing_engine), for the commands that only read; actor and configuration from the
    settings."""
    from odd17.uow import open_uow

    with open_uow(existing_engine(), cli_context()) as uow:
        yield uow


def cli_context() -> Context:
    """The context of every command: its actor (ODD17_ACTOR, else cli:<login>), the fund's
    configuration and the deployment's settings."""
    from odd17.runtime import actor
    from odd17.uow import Context

    return Context.from_settings(actor("cli"))


def ready_engine() -> Engine:
    """The configured database, created on first use; an outdated schema asks for init."""
    from odd17.db import get_engine
    from odd17.runtime import utcnow
    from odd17.services import setup
    from odd17.settings import get_fund_config

    engine = get_engine()
    if setup.ensure_initialised(engine, get_fund_config(), utcnow()):
        err.print("Base de données absente : initialisation (odd17 init) effectuée.")
    elif not setup.is_head(setup.current_revision(engine)):
        fail("le schéma de la base n'est pas à jour : lancez « odd17 init »")
    return engine


@contextmanager
def progress_bar(total: int, label: str, enabled: bool) -> Iterator[Callable[[int], None]]:
    """A progress bar on an interactive terminal; silent in pipes and in --json."""
    if not enabled or not err.is_terminal or total < 2:
        yield lambda _n: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err, transient=True,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


@contextmanager
def busy(label: str, enabled: bool = True) -> Iterator[None]:
    """A spinner on an interactive terminal; nothing in pipes nor with --json."""
    if enabled and err.is_terminal:
        with err.status(label):
            yield
    else:
        yield


def policy_threshold() -> Decimal:
    from odd17.settings import get_fund_config

    return get_fund_config().disbursement.alert_threshold


def parse_amount_option(value: str | None, option: str) -> Decimal | None:
    if value is None:
        return None
    from rules.money import parse_amount

    try:
        return parse_amount(value)  # French forms too: 12,5 ; 70 000,50 €
    except ValueError as exc:
        fail(f"{option} : {exc}")


def parse_day_option(value: str | None) -> dt.date:
    if value is None:
        from odd17.runtime import utcnow

        return utcnow().date()
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        fail(f"--date : date invalide « {value} » (format AAAA-MM-JJ)")


def check_references(session: Any, references: list[str], *, allowed: Iterable[Status],
                      why: str) -> None:
    """Refuse (exit 2) named references that do not exist or are not in an ``allowed``
    status, naming each and why: a command never ignores an argument silently."""
    from odd17.services import queries
    from rules.labels import status_label

    found = queries.statuses_of(session, references)
    allowed = set(allowed)
    problems = []
    for reference in dict.fromkeys(r.strip().upper() for r in references):
        current = found.get(reference)
        if current is None:
            problems.append(f"aucun dossier de référence « {reference} »")
        elif current not in allowed:
            problems.append(f"{reference} est au statut « {status_label(current.value)} »")
    if problems:
        fail("; ".join(problems) + ("" if all(p.startswith("aucun") for p in problems)
                                    else f" ({why})"))
