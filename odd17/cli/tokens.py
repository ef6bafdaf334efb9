"""Personal API tokens: tokens create, list, revoke (the secret is printed once, at
creation)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from odd17.cli import app
from odd17.cli._common import JsonFlag, cli_context, existing_engine, out, print_json, user_errors
from odd17.display import SafeTable, line

if TYPE_CHECKING:
    pass

tokens_app = typer.Typer(help="Jetons d'API personnels (scripts).", no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")



@tokens_app.command("create")
def tokens_create(
    email: Annotated[str, typer.Argument(help="Adresse du propriétaire.")],
    name: Annotated[str, typer.Option("--name", help="À quoi sert le jeton.")],
    as_json: JsonFlag = False,
) -> None:
    """Crée un jeton pour EMAIL, limité à son rôle actuel ; le secret n'est montré qu'ici."""
    from odd17.services import tokens
    from odd17.uow import open_uow

    with user_errors(), open_uow(existing_engine(), cli_context()) as uow:
        created = tokens.create(uow, email, name)
    if as_json:
        print_json(created)
        return
    token = created["token"]
    out.print(line(("Jeton créé", "bold green"), f" n°{token['id']} « ", token["name"],
                   f" » pour {token['owner']} (rôle {token['scope']})."))
    out.print(line("Secret (affiché une seule fois, à conserver) : ",
                   (created["secret"], "bold")))


@tokens_app.command("list")
def tokens_list(
    owner: Annotated[str | None, typer.Option("--owner", help="Les jetons de cette adresse.")]
    = None,
    as_json: JsonFlag = False,
) -> None:
    """Liste les jetons (jamais leur secret), les plus récents d'abord."""
    from odd17.services import tokens
    from odd17.uow import open_uow

    with user_errors(), open_uow(existing_engine(), cli_context()) as uow:
        rows = tokens.list_tokens(uow, owner)
    if as_json:
        print_json(rows)
        return
    table = SafeTable("n°", "propriétaire", "nom", "début", "rôle", "créé", "dernier usage",
                      "état")
    for r in rows:
        table.add_row(str(r["id"]), r["owner"], r["name"], r["prefix"] + "…", r["scope"],
                      r["created_at"][:16], (r["last_used_at"] or "—")[:16],
                      "actif" if r["active"] else f"révoqué le {(r['revoked_at'] or '')[:16]}")
    out.print(table)


@tokens_app.command("revoke")
def tokens_revoke(token_id: Annotated[int, typer.Argument(help="Numéro du jeton.")],
                  as_json: JsonFlag = False) -> None:
    """Révoque un jeton : il ne permet plus aucun appel."""
    from odd17.services import tokens
    from odd17.uow import open_uow

    with user_errors(), open_uow(existing_engine(), cli_context()) as uow:
        token = tokens.revoke(uow, token_id)
    if as_json:
        print_json(token)
        return
    out.print(line(("Jeton révoqué", "bold"), f" n°{token['id']} « ", token["name"],
                   f" » ({token['owner']})."))
