"""The human output of the commands: tables and lines built from what the use cases return,
through odd17/display.py (user text literal, controls visible). ``--json`` output is not here:
it is the use case's data as it is (print_json)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from rich import box
from rich.text import Text

from odd17.cli._common import err, fail, out, policy_threshold
from odd17.display import SafeTable as Table
from odd17.display import line, safe
from odd17.display import status as status_text
from rules.labels import message_status_label, objective_label, status_label
from rules.money import eur

if TYPE_CHECKING:
    from notifications.dispatch import Report
    from notifications.render import Rendered
    from odd17.services import intake
    from odd17.services.assignment import Assignment
    from odd17.services.eligibility import Verdict
    from odd17.services.queries import ApplicationDetail, ApplicationRow
    from odd17.services.reviewers import ImportReport
    from odd17.services.scoring import Ranking
    from rules.review import ReviewPolicy


def outcomes(done: list[intake.Outcome]) -> None:
    """``submit``: each document, its reference and status, then the counts by status."""
    table = Table(title="Dossiers déposés")
    table.add_column("source", overflow="fold")
    table.add_column("référence", no_wrap=True)
    table.add_column("statut", no_wrap=True)
    table.add_column("détail")
    for o in done:
        detail = "\n".join(f"{e['field']} : {e['message']}" for e in o.errors)
        if o.failing:
            detail = "règles non satisfaites : " + ", ".join(o.failing)
        if o.duplicate:
            detail = "déjà déposé : aucun nouveau dossier créé"
        table.add_row(o.source, o.reference or "—", status_text(o.status), detail)
    out.print(table)
    counts: dict[str, int] = {}
    for o in done:
        counts[o.status] = counts.get(o.status, 0) + 1
    out.print(line(", ".join(f"{n} {status_label(status)}"
                             for status, n in sorted(counts.items()))))


def scores(detail: ApplicationDetail, policy: ReviewPolicy) -> None:
    from odd17.services.scoring import exact_review_scores
    from rules.review import mean, score_fr

    scored = [r for r in detail["reviews"] if r["scored_at"]]
    if scored:
        values = exact_review_scores(scored, policy)
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


def alert(moved: Any) -> None:
    if moved is not None and moved.alert_raised:
        err.print(line(("Alerte enveloppe :", "bold yellow"), f" disponible "
                       f"{eur(moved.available)}, sous le seuil de "
                       f"{policy_threshold() * 100:.0f} % de l'enveloppe."))


def _shown(value: str | None) -> Text:
    """User text for a rich table: no markup interpreted, invisible controls made visible."""
    return safe(value or None)


def finance(report: Mapping[str, Any]) -> None:
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
    due(report.get("tranches_due", []))


def due(rows: Sequence[Mapping[str, Any]]) -> None:
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


def application(detail: ApplicationDetail, policy: ReviewPolicy, zone: str) -> None:
    """``show``: the application, its eligibility rule by rule, its scores (under ``policy``),
    its history (times in ``zone``)."""
    out.print(line((detail["reference"], "bold"), " — ", detail["title"]))
    out.print(line("statut : ", status_text(detail["status"]), "   appel : ", detail["call"]))
    lead = detail["lead"]
    out.print(line(f"porteur : {lead['name']} ({lead['kind']}, "
                   f"{lead['siret'] or lead['rna'] or '—'}) <{lead['email'] or '—'}>"))
    partners = [p.get("name", "") for p in detail["partners"] if isinstance(p, dict)]
    if partners:
        out.print(line("partenaires : ", "; ".join(partners)))
    territory = detail["territory"] or {}
    out.print(line(f"territoire : {territory.get('region')} ({territory.get('department')})   "
                   f"objectifs : {', '.join(objective_label(o) for o in detail['objectives'])}"))
    out.print(line(f"montant demandé : {eur(Decimal(detail['requested_amount']))} sur un "
                   f"budget de {eur(Decimal(detail['total_budget']))}"))
    if detail["summary"]:
        out.print(line("résumé : ", detail["summary"]))
    if detail["eligibility"]:
        table = Table("règle", "", "motif", title=f"Éligibilité (règles "
                      f"{detail['eligibility_ruleset']}, politique {detail['eligibility_policy']})")
        for r in detail["eligibility"]:
            mark = safe("✓", "green") if r["passed"] else safe("✗", "red")
            table.add_row(r["rule"], mark, r["reason"])
        out.print(table)
    scores(detail, policy)
    history = Table(f"date ({zone})", "de", "vers", "par", "motif", title="Historique")
    history.columns[0].no_wrap = True
    for h in detail["history"]:
        history.add_row(local_time(h["at"], zone), status_text(h["from"]),
                        status_text(h["to"]), h["actor"], h["reason"])
    out.print(history)


def application_page(rows: Iterable[ApplicationRow], *, total: int, page: int, limit: int,
                     offset: int) -> None:
    """``list``: one page of applications (``rows`` read as they are printed), and where it
    stands among ``total``."""
    # Light borders, and never a reference, a status or an amount broken across lines:
    # only the title and the objective give way on a narrow terminal.
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("référence", no_wrap=True)
    table.add_column("statut", no_wrap=True)
    table.add_column("titre", overflow="fold", ratio=1, min_width=10)
    table.add_column("objectif", overflow="ellipsis", max_width=15)
    table.add_column("dép.", no_wrap=True)
    table.add_column("montant", no_wrap=True, justify="right")
    shown = 0
    for row in rows:
        shown += 1
        table.add_row(row["reference"], status_text(row["status"]), row["title"],
                      objective_label(row["primary_objective"]), row["department"] or "—",
                      eur(Decimal(row["requested_amount"])))
    if shown:
        out.print(table)
    pages = max(1, -(-total // limit))
    if shown:
        out.print(line(f"{offset + 1}–{offset + shown} sur {total} dossier(s) "
                       f"(page {page}/{pages})"
                       + (f" ; suite : --page {page + 1}" if page < pages else "")))
    else:
        out.print(line(f"{total} dossier(s)"
                       + (f" ; la page {page} est au-delà de la dernière ({pages})"
                          if total else "")))


def tranches(rows: Sequence[Mapping[str, Any]]) -> None:
    """``tranches``: the tranches due and not paid, with their titles."""
    if not rows:
        out.print("Aucune tranche échue à verser.")
        return
    table = Table("échéance", "référence", "tranche", "à verser", "titre",
                  title="Tranches à verser")
    for column in (table.columns[0], table.columns[1], table.columns[3]):
        column.no_wrap = True  # dates, references and amounts are never broken
    table.columns[4].overflow = "fold"
    for r in rows:
        partial = (f" (sur {eur(Decimal(r['amount']))})" if r["left"] != r["amount"] else "")
        table.add_row(r["due_on"], r["reference"], f"{r['tranche']} ({r['label']})",
                      eur(Decimal(r["left"])) + partial, r["title"])
    out.print(table)


def reviewers(rows: list[dict[str, Any]]) -> None:
    """``reviewers list``."""
    table = Table("e-mail", "nom", "SIREN", "intérêts", "comité", "évalue")
    table.columns[2].no_wrap = True  # a SIREN is never broken
    for column in (table.columns[0], table.columns[1], table.columns[3]):
        column.overflow = "fold"  # an address is folded whole, never cut with an ellipsis
    for r in rows:
        table.add_row(r["email"], r["name"], r["siren"] or "—", ", ".join(r["interests"]),
                      "oui" if r["committee"] else "", "oui" if r["reviews"] else "")
    out.print(table)


def proposal(ranked: Ranking) -> None:
    """``committee propose``: the ranking, what fits in the envelope, and its total."""
    from rules.review import score_fr

    table = Table("rang", "référence", "note", "montant", "proposé", "titre",
                  title=f"Proposition (disponible {eur(ranked.available)})")
    for rank, item in enumerate(ranked.items, start=1):
        table.add_row(str(rank), item.reference, score_fr(item.score), eur(item.amount),
                      "oui" if item.funded else "non", ranked.titles[item.reference])
    for column in table.columns[:5]:
        column.no_wrap = True
    table.columns[5].overflow = "fold"
    out.print(table)
    total = sum((item.amount for item in ranked.items if item.funded), Decimal(0))
    out.print(line(f"Total proposé : {eur(total)}."))


def outbox(rows: list[dict[str, object]], counts: dict[str, int]) -> None:
    """``outbox list``: the messages, then how many in each status."""
    if rows:
        table = Table("n°", "événement", "destinataire", "dossier", "statut", "essais",
                      "détail")
        for column in (table.columns[0], table.columns[3], table.columns[5]):
            column.no_wrap = True  # numbers and references are never broken
        for column in (table.columns[1], table.columns[2], table.columns[6]):
            column.overflow = "fold"  # folded whole, never cut with an ellipsis
        for r in rows:  # SafeTable: recipients, subjects and errors shown literally
            table.add_row(str(r["id"]), str(r["event"]), str(r["recipient"]),
                          str(r["reference"] or "—"), message_status_label(str(r["status"])),
                          str(r["attempts"]), str(r["last_error"] or r["subject"] or ""))
        out.print(table)
    else:
        out.print("Aucun message ne correspond.")
    out.print(line("Dans la file : " + (", ".join(
        f"{message_status_label(s)} {n}" for s, n in sorted(counts.items())) or "vide")))


def verdicts(done: list[Verdict]) -> None:
    """``evaluate``: the applications whose status changed, then the counts."""
    changed = [v for v in done if v.status != v.previous]
    for v in changed:
        out.print(line(f"{v.reference} : ", status_text(v.previous), " → ",
                       status_text(v.status), f" ({', '.join(v.failing)})" if v.failing else ""))
    out.print(line(f"{len(done)} dossier(s) évalué(s), {len(changed)} changement(s) de "
                   "statut."))


def assignment(result: Assignment) -> None:
    """``review assign``: who reviews what, and what waits for reviewers."""
    for ref, emails in result.assigned.items():
        out.print(line(f"{ref} → {', '.join(emails)}"))
    for ref, available in result.short.items():
        err.print(line((f"{ref} : pas assez d'évaluateurs sans conflit ({available}) ; le "
                        "dossier reste éligible.", "yellow")))
    out.print(line(f"{len(result.assigned)} dossier(s) en évaluation, {len(result.short)} en "
                   "attente."))


def import_report(report: ImportReport) -> None:
    """``reviewers import``: the counts, then each refused row and why."""
    out.print(line(f"{report.created} créé(s), {report.updated} mis à jour, "
                   f"{len(report.refused)} refusé(s)."))
    for refusal in report.refused:
        err.print(line(("refusé", "red"), f" {refusal['source']} : {refusal['errors']}"))


def send_report(report: Report) -> None:
    """``outbox send``: the counts, the first errors, and a server that did not answer."""
    out.print(line(f"{report.sent} envoyé(s), {report.retried} à réessayer, "
                   f"{report.failed} en échec."))
    for error in report.errors[:20]:
        err.print(line((error, "yellow")))
    if len(report.errors) > 20:
        err.print(line(f"… et {len(report.errors) - 20} autre(s) : odd17 outbox list "
                       "--status failed"))
    if report.unreachable:
        err.print(line((report.unreachable, "bold red"),
                       f" : {report.waiting} message(s) en attente, aucun essai décompté ;"
                       " ils partiront au prochain envoi."))


def email(rendered: Rendered) -> None:
    """``outbox preview``: the subject, then the text part as it is."""
    out.print(line(("Objet :", "bold"), " ", rendered.subject, "\n"))
    out.print(safe(rendered.text), soft_wrap=True)
