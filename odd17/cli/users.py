"""Staff accounts of the web portal: users add, list, disable, totp."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from odd17.cli import app
from odd17.cli._common import (
    JsonFlag,
    cli_context,
    err,
    fail,
    out,
    print_json,
    ready_engine,
    user_errors,
)
from odd17.display import SafeTable, line

if TYPE_CHECKING:
    pass

users_app = typer.Typer(help="Comptes de l'équipe du fonds (portail web).",
                        no_args_is_help=True)
app.add_typer(users_app, name="users")

ROLE_NAMES = {"manager": "chargé de mission", "finance": "responsable financier",
              "admin": "administrateur"}



@users_app.command("add")
def users_add(
    email: str,
    role: Annotated[str, typer.Option("--role", help="manager, finance ou admin.")],
) -> None:
    """Crée un compte (ou change le rôle d'un compte existant et le réactive)."""
    from odd17.services import accounts
    from odd17.uow import open_uow

    if role.strip().lower() not in ROLE_NAMES:
        fail(f"--role : « {role} » inconnu (manager, finance ou admin)")
    with user_errors(), open_uow(ready_engine(), cli_context()) as uow:
        created = accounts.add_user(uow, email, role)
        address = accounts.normalise_email(email)
    verb = "créé" if created else "mis à jour (rôle, réactivé)"
    out.print(line("Compte ", (address, "bold"), f" {verb} : {ROLE_NAMES[role.strip().lower()]}."))


@users_app.command("list")
def users_list(as_json: JsonFlag = False) -> None:
    """Liste les comptes de l'équipe."""
    from odd17.services import accounts
    from odd17.uow import open_uow

    with user_errors(), open_uow(ready_engine(), cli_context()) as uow:
        rows = accounts.list_users(uow)
    if as_json:
        print_json([r.as_json() for r in rows])
        return
    if not rows:
        out.print("Aucun compte. Créez-en un : odd17 users add ADRESSE --role admin")
        return
    table = SafeTable("Adresse", "Rôle", "État", "Code TOTP", "Créé le")
    for r in rows:
        table.add_row(r.email, ROLE_NAMES.get(r.role, r.role),
                      "désactivé" if r.disabled else "actif", "oui" if r.totp else "non",
                      r.created_at[:10])
    out.print(table)


@users_app.command("disable")
def users_disable(email: str) -> None:
    """Désactive un compte et ferme toutes ses sessions."""
    from odd17.services import accounts
    from odd17.uow import open_uow

    with user_errors(), open_uow(ready_engine(), cli_context()) as uow:
        revoked = accounts.disable_user(uow, email)
        address = accounts.normalise_email(email)
    out.print(line("Compte ", (address, "bold"),
                   f" désactivé ; {revoked} session(s) fermée(s)."))


@users_app.command("totp")
def users_totp(email: str) -> None:
    """Crée le secret TOTP d'un compte (remplace l'ancien) et l'affiche une seule fois."""
    from odd17.services import accounts
    from odd17.settings import get_settings
    from odd17.uow import open_uow

    with user_errors(), open_uow(ready_engine(), cli_context()) as uow:
        secret, uri = accounts.enrol_totp(uow, email, get_settings().secret_key)
    err.print("Ajoutez ce compte à l'application d'authentification de son titulaire "
              "(lien otpauth ou secret) ; il ne sera plus affiché.")
    out.print(line("URI : ", uri), soft_wrap=True)  # one line: copied whole
    out.print(line("Secret : ", secret), soft_wrap=True)
