"""The human output of the commands: tables and lines built from what the use cases return,
through odd17/display.py (user text literal, controls visible). ``--json`` output is not here:
it is the use case's data as it is (print_json)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from rich.text import Text

from odd17.cli._common import err, fail, out, policy_threshold
from odd17.display import SafeTable as Table
from odd17.display import line, safe
from odd17.display import status as status_text
from odd17.services import intake
from odd17.settings import get_fund_config
from rules.labels import status_label
from rules.money import eur


def print_outcomes(outcomes: list[intake.Outcome]) -> None:
    table = Table(title="Dossiers déposés")
    table.add_column("source", overflow="fold")
    table.add_column("référence", no_wrap=True)
    table.add_column("statut", no_wrap=True)
    table.add_column("détail")
    for o in outcomes:
        detail = "\n".join(f"{e['field']} : {e['message']}" for e in o.errors)
        if o.failing:
            detail = "règles non satisfaites : " + ", ".join(o.failing)
        if o.duplicate:
            detail = "déjà déposé : aucun nouveau dossier créé"
        table.add_row(o.source, o.reference or "—", status_text(o.status), detail)
    out.print(table)
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    out.print(line(", ".join(f"{n} {status_label(status)}"
                             for status, n in sorted(counts.items()))))


def print_scores(detail: dict[str, Any]) -> None:
    from odd17.services.review import exact_review_scores
    from rules.review import mean, score_fr

    scored = [r for r in detail["reviews"] if r["scored_at"]]
    if scored:
        values = exact_review_scores(scored, get_fund_config().review)
        out.print(line(f"note : {score_fr(mean(values))} ("
                       + " ; ".join(f"{r['reviewer']} {score_fr(v)}"
                                    for r, v in zip(scored, values, strict=True)) + ")"))


def local_time(iso: str, zone: str) -> str:
    """A stored UTC timestamp as the wall-clock time of ``zone`` (ODD17_TIMEZONE)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    moment = dt.datetime.fromisoformat(iso)
    if moment.tzinfo is None:  # stored in UTC; SQLite hands it back naive
        moment = moment.replace(tzinfo=dt.UTC)
    try:
        moment = moment.astimezone(ZoneInfo(zone))
    except (ZoneInfoNotFoundError, ValueError):
        fail(f"ODD17_TIMEZONE : fuseau horaire « {zone} » inconnu (ex. Europe/Paris)")
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def print_alert(moved: Any) -> None:
    if moved is not None and moved.alert_raised:
        err.print(line(("Alerte enveloppe :", "bold yellow"), f" disponible "
                       f"{eur(moved.available)}, sous le seuil de "
                       f"{policy_threshold() * 100:.0f} % de l'enveloppe."))


def _shown(value: str | None) -> Text:
    """User text for a rich table: no markup interpreted, invisible controls made visible."""
    return safe(value or None)


def print_finance(report: dict[str, Any]) -> None:
    from rules.labels import objective_label
    from rules.text import sort_key

    def money(key: str) -> str:
        return eur(Decimal(report[key]))

    out.print(line(("Enveloppe", "bold"), f" {money('envelope')}   engagé {money('committed')}"
                   f"   versé {money('disbursed')}   ",
                   (f"disponible {money('available')}", "bold"),
                   f"   {report['grants']} subvention(s)"))
    if report["alert"]:
        out.print(line(("Alerte : le disponible est sous le seuil d'alerte.", "bold yellow")))
    for title, rows, label in (
        ("Par objectif principal", report["by_objective"], objective_label),
        ("Par région", sorted(report["by_region"], key=lambda r: sort_key(r["key"])),
         lambda key: key),
    ):
        table = Table("", "engagé", "versé", "subventions", title=title)
        for row in rows:
            table.add_row(_shown(label(row["key"])), eur(Decimal(row["committed"])),
                          eur(Decimal(row["disbursed"])), str(row["grants"]))
        out.print(table)
    print_due(report.get("tranches_due", []))


def print_due(rows: list[dict[str, Any]]) -> None:
    if not rows:
        out.print("Aucune tranche échue à verser.")
        return
    partial = any(r["left"] != r["amount"] for r in rows)
    table = Table("échéance", "référence", "bénéficiaire", "tranche", "montant",
                  *(["reste à payer"] if partial else []),
                  title=f"Tranches échues à verser ({len(rows)})")
    for r in rows:
        table.add_row(r["due_on"], _shown(r["reference"]), _shown(r["beneficiary"]),
                      Text(f"n°{r['tranche']} ") + _shown(r["label"]),
                      eur(Decimal(r["amount"])),
                      *([eur(Decimal(r["left"]))] if partial else []))
    out.print(table)
    total = sum((Decimal(r["left"]) for r in rows), Decimal("0.00"))
    out.print(f"Total à verser : {eur(total)} (détail et titres : odd17 tranches)")
