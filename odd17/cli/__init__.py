"""The ``odd17`` command line (README: the commands by role, and « `--json` shapes »).
Thin: parse, call a use case, render.

Every failure the user can cause ends with a clear message and a non-zero exit, never a
traceback: exit 1 when some documents were refused, 2 for a command that could not run, 3 when
``submit`` met an unexpected error (one line, the details in a log file).

One module per command group (applications, finance, exports, review, outbox, serve, users), the
shared error policy and options in ``_common``, the human output in ``render``. The modules
register their commands on ``app`` when imported below, in the order of ``odd17 --help``."""

from __future__ import annotations

import atexit
import gc
import os
import sys
from typing import TYPE_CHECKING

import typer
from typer.core import TyperGroup

if TYPE_CHECKING:
    from typer._click import Context as ClickContext  # the click Typer vendors and calls


class _Group(TyperGroup):
    """Notes whether help was asked for anywhere on the line, before the settings check."""

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        ctx.meta["odd17.help"] = "--help" in args
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_Group,
    name="odd17",
    help="Fonds ODD 17 : gestion des appels à projets, de l'éligibilité et de l'enveloppe.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Typer's rich help panel shows a "<bool>" type beside every flag (--json, --help):
    # the plain help lists flags as flags.
    rich_markup_mode=None,
)


@app.callback()
def _check_settings(ctx: typer.Context) -> None:
    """Every ODD17_* setting is checked before any command runs: one line for a bad one."""
    if ctx.resilient_parsing or ctx.meta.get("odd17.help"):
        return  # completion and help work whatever the settings
    from pydantic import ValidationError

    from odd17.cli._common import err
    from odd17.display import line
    from odd17.settings import get_settings, settings_error

    try:
        get_settings()
    except ValidationError as exc:
        err.print(line(("Erreur :", "bold red"), " ", settings_error(exc)))
        raise typer.Exit(2) from None


# Imported for their commands, after ``app`` exists; the order is the order of the help.
from odd17.cli import applications, finance, exports, review, outbox, serve, tokens, users  # noqa: E402, F401, I001


def main() -> None:
    atexit.register(_end_quickly)  # registered first, so it runs after every other handler
    # odd17 uses no pydantic plugin: skip their discovery (issue 12), which reads the metadata
    # of every installed distribution at the first model. A user who wants one sets
    # PYDANTIC_DISABLE_PLUGINS (pydantic's documented switch; empty: every plugin loads).
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    app()


def _end_quickly() -> None:
    """Skip the interpreter's last garbage collections (issue 12): at exit they walk every
    object SQLAlchemy, pydantic and the models built, a quarter of a short command's CPU time,
    to free memory the ending process gives back anyway. The database connections are closed
    first, as the collections would have closed them."""
    db = sys.modules.get("odd17.db")
    if db is not None:
        db.dispose_engines()
    gc.freeze()
