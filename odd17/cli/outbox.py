"""E-mails: outbox list, send, retry, preview."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from odd17.cli import app, render
from odd17.cli._common import (
    JsonFlag,
    cli_context,
    err,
    existing_engine,
    fail,
    out,
    print_json,
    ready_engine,
    user_errors,
)

if TYPE_CHECKING:
    pass

outbox_app = typer.Typer(help="Courriels : file d'envoi (outbox).", no_args_is_help=True)
app.add_typer(outbox_app, name="outbox")



@outbox_app.command("list")
def outbox_list(
    status: Annotated[str | None, typer.Option("--status", help="pending, sending, sent "
                                               "ou failed.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Liste les messages de la file (les plus récents d'abord)."""
    from models import MessageStatus
    from odd17.services import outbox
    from odd17.uow import open_uow

    try:
        wanted = MessageStatus(status) if status else None
    except ValueError:
        fail(f"--status : « {status} » inconnu (pending, sending, sent, failed)")
    with user_errors(), open_uow(existing_engine(), cli_context()) as uow:
        rows = outbox.list_messages(uow, wanted)
        counts = outbox.counts(uow)
    if as_json:
        print_json(rows)
        return
    render.outbox(rows, counts)


@outbox_app.command("send")
def outbox_send(as_json: JsonFlag = False) -> None:
    """Envoie les messages dus (transport configuré : ODD17_MAIL_TRANSPORT).

    Code de sortie : 0 tout est parti (ou rien n'était dû) ; 1 des messages sont en échec
    définitif ; 2 le serveur est injoignable (les messages attendent) ou la commande n'a pu
    s'exécuter."""
    from odd17.services import outbox
    from odd17.settings import get_settings
    from odd17.uow import Runner

    with user_errors():
        runner = Runner(ready_engine(), cli_context())
        report = outbox.send(runner, outbox.MailSettings.from_settings(get_settings()))
    if as_json:
        print_json({"sent": report.sent, "retried": report.retried, "failed": report.failed,
                    "errors": report.errors, "unreachable": report.unreachable,
                    "waiting": report.waiting})
    else:
        render.send_report(report)
    if report.unreachable:
        raise typer.Exit(2)
    if report.failed:
        raise typer.Exit(1)


@outbox_app.command("retry")
def outbox_retry(ids: Annotated[list[int] | None, typer.Argument()] = None) -> None:
    """Remet en file les messages en échec (tous, ou ceux dont on donne les numéros)."""
    from odd17.services import outbox
    from odd17.uow import open_uow

    with user_errors(), open_uow(ready_engine(), cli_context()) as uow:
        count = outbox.retry(uow, ids)
    out.print(f"{count} message(s) remis en file.")


@outbox_app.command("preview")
def outbox_preview(
    event: str,
    reference: Annotated[str | None, typer.Argument(help="Dossier dont on prend le dernier "
                                                    "message de cet événement.")] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Écrit la partie HTML dans ce "
                                              "fichier.")] = None,
) -> None:
    """Affiche un courriel rendu : exemple fictif, ou le dernier de ce dossier."""
    from odd17.services import outbox
    from odd17.settings import get_settings
    from odd17.uow import open_uow

    with user_errors():
        settings = get_settings()
        context, templates = cli_context(), settings.templates_dir
        portal = settings.public_url.rstrip("/")
        if reference:
            with open_uow(existing_engine(), context) as uow:
                rendered = outbox.preview(context, event, templates=templates, uow=uow,
                                          reference=reference, portal_url=portal)
        else:
            rendered = outbox.preview(context, event, templates=templates, portal_url=portal)
    render.email(rendered)
    if html is not None:
        html.write_text(rendered.html, "utf-8")
        err.print(f"Partie HTML écrite : {html}")
