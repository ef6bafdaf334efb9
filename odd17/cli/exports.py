"""Open data exports: export scdl, export 360giving."""

from __future__ import annotations

from pathlib import Path

import typer

from odd17.cli import app
from odd17.cli._common import JsonFlag, busy, out, print_json, read_uow, user_errors
from odd17.display import line

export_app = typer.Typer(help="Exports open data (SCDL Subventions, 360Giving).",
                         no_args_is_help=True)
app.add_typer(export_app, name="export")


@export_app.command("scdl")
def export_scdl(file: Path, as_json: JsonFlag = False) -> None:
    """Subventions attribuées au format SCDL Subventions 2.1.1 (CSV)."""
    from odd17.services import exports

    with user_errors(), busy("Export SCDL…", not as_json), read_uow() as uow:
        count = exports.write_scdl(uow, file)
    _exported(count, "SCDL", file, as_json)


@export_app.command("360giving")
def export_360giving(file: Path, as_json: JsonFlag = False) -> None:
    """Subventions attribuées au format 360Giving 1.4 (paquet JSON)."""
    from odd17.services import exports

    with user_errors(), busy("Export 360Giving…", not as_json), read_uow() as uow:
        count = exports.write_360giving(uow, file)
    _exported(count, "360Giving", file, as_json)


def _exported(count: int, standard: str, file: Path, as_json: bool) -> None:
    if as_json:
        print_json({"format": standard.lower(), "file": str(file), "grants": count})
    else:
        out.print(line(f"{count} subvention(s) exportée(s) au format {standard} : {file}"))
