"""The envelope: pay, grant cancel/close, topup, tranches, finance."""

from __future__ import annotations

from contextlib import AbstractContextManager
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from odd17.cli import app, render
from odd17.cli._common import (
    JsonFlag,
    cli_context,
    err,
    fail,
    out,
    parse_amount_option,
    parse_day_option,
    print_json,
    read_uow,
    ready_engine,
    user_errors,
)
from odd17.display import line
from rules.money import as_str, eur

if TYPE_CHECKING:
    from odd17.uow import UnitOfWork


@app.command()
def pay(
    reference: str,
    tranche: Annotated[int, typer.Option("--tranche", help="Numéro de la tranche (1, 2, 3…).")],
    payment_reference: Annotated[str, typer.Option("--reference", help="Référence unique du "
                                                   "paiement (virement).")],
    date: Annotated[str | None, typer.Option("--date", help="Date du paiement AAAA-MM-JJ "
                                             "(défaut : aujourd'hui).")] = None,
    amount: Annotated[str | None, typer.Option("--amount", help="Montant versé, si différent "
                                               "de la tranche prévue.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Enregistre le versement d'une tranche. Une référence déjà enregistrée ne crée rien."""
    from odd17.services import ledger

    with user_errors(), _uow() as uow:
        result = ledger.pay(uow, reference, tranche, payment_reference,
                            paid_on=parse_day_option(date),
                            amount=parse_amount_option(amount, "--amount"))
    if as_json:
        print_json({"reference": result.reference, "tranche": tranche,
                    "payment_reference": payment_reference, "recorded": result.recorded,
                    "amount": as_str(result.amount)})
        return
    if result.recorded:
        out.print(line(f"{result.reference} : tranche {tranche} versée, {eur(result.amount)} "
                       f"(référence {payment_reference})."))
    else:
        out.print(line(f"{result.reference} : {result.message} ; rien de nouveau enregistré."))
    render.alert(result.moved)


def _uow() -> AbstractContextManager[UnitOfWork]:
    """One unit of work for a finance command: the CLI's actor, the fund's configuration."""
    from odd17.uow import open_uow

    return open_uow(ready_engine(), cli_context())


grant_app = typer.Typer(help="Subventions attribuées : annulation, clôture.",
                        no_args_is_help=True)
app.add_typer(grant_app, name="grant")


def _end(reference: str, cancel: bool, reason: str, as_json: bool) -> None:
    from odd17.services import ledger

    with user_errors(), _uow() as uow:
        result = ledger.end_grant(uow, reference, cancel=cancel, reason=reason)
    if as_json:
        print_json({"reference": result.reference, "status": "cancelled" if cancel else "closed",
                    "released": as_str(result.amount)})
        return
    out.print(line(f"{result.reference} : {'annulée' if cancel else 'clôturée'} ; "
                   f"{eur(result.amount)} rendus à l'enveloppe."))


@grant_app.command("cancel")
def grant_cancel(
    reference: str,
    motif: Annotated[str, typer.Option("--motif", help="Motif de l'annulation.")],
    as_json: JsonFlag = False,
) -> None:
    """Annule une subvention ; ce qui reste engagé est rendu à l'enveloppe."""
    _end(reference, True, motif, as_json)


@grant_app.command("close")
def grant_close(
    reference: str,
    motif: Annotated[str, typer.Option("--motif", help="Commentaire de clôture.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Clôt un projet actif ; ce qui n'a pas été versé est rendu à l'enveloppe."""
    _end(reference, False, motif, as_json)


@app.command()
def topup(
    amount: Annotated[str | None, typer.Argument(help="Montant de l'abondement.")] = None,
    motif: Annotated[str, typer.Option("--motif", help="Décision du conseil (ou motif de la "
                                       "correction).")] = "",
    key: Annotated[str | None, typer.Option("--key", help="Clé d'idempotence (défaut : "
                                            "dérivée du motif et du montant).")] = None,
    correct: Annotated[int | None, typer.Option("--correct", help="Corrige (annule) "
                                                "l'abondement de ce numéro d'écriture.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Abonde l'enveloppe (décision du conseil d'administration), ou corrige un abondement
    erroné par une écriture inverse (--correct N)."""
    from odd17.services import ledger
    from odd17.services.finance import finance_report

    if (amount is None) == (correct is None):
        fail("donnez soit un montant, soit --correct N (numéro de l'écriture à corriger)")
    with user_errors(), _uow() as uow:
        if correct is not None:
            result = ledger.correct_topup(uow, correct, reason=motif)
        else:
            value = parse_amount_option(amount, "montant")
            assert value is not None
            result = ledger.record_topup(uow, value, reason=motif, key=key,
                                         max_amount=uow.config.disbursement.max_topup)
        report = finance_report(uow)
    if as_json:
        print_json({"entry": result.entry, "kind": "correction" if correct else "topup",
                    "corrects": correct, "amount": as_str(result.amount),
                    "motif": motif.strip(), "recorded": result.recorded,
                    **{k: report[k] for k in ("envelope", "committed", "disbursed",
                                              "available")}})
        return
    if correct is not None:
        out.print(f"Abondement n°{correct} corrigé (écriture n°{result.entry}) : enveloppe "
                  f"diminuée de {eur(result.amount)}, désormais "
                  f"{eur(Decimal(report['envelope']))}.")
    elif result.recorded:
        out.print(f"Enveloppe abondée de {eur(result.amount)} (écriture n°{result.entry}), "
                  f"désormais {eur(Decimal(report['envelope']))}.")
    else:
        out.print(f"Abondement déjà enregistré (écriture n°{result.entry}) : rien de nouveau.")
    render.alert(result.moved)


@app.command()
def tranches(
    date: Annotated[str | None, typer.Option("--date", help="Échues à cette date "
                                             "(défaut : aujourd'hui).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Tranches échues et non versées."""
    from odd17.services.finance import tranches_due

    with user_errors(), read_uow() as uow:
        rows = tranches_due(uow, parse_day_option(date))
    if as_json:
        print_json(rows)
        return
    render.tranches(rows)


@app.command()
def finance(
    as_json: JsonFlag = False,
    html: Annotated[Path | None, typer.Option("--html", help="Écrit le rapport HTML "
                                              "autonome dans ce fichier.")] = None,
    check: Annotated[bool, typer.Option("--check", help="Vérifie les invariants à partir du "
                                        "seul grand livre.")] = False,
) -> None:
    """Situation de l'enveloppe : engagé, versé, disponible, par objectif et par région, et
    les tranches échues à verser."""
    from odd17.runtime import utcnow
    from odd17.services import audit
    from odd17.services.finance import finance_report
    from odd17.settings import get_fund_config, get_settings

    config = get_fund_config()
    timezone = get_settings().timezone
    now = utcnow()
    with user_errors(), read_uow() as uow:
        report = finance_report(uow, on=uow.today)
        breaches = audit.check(uow) if check else []
    if html is not None:
        from odd17 import reports

        with user_errors():
            reports.write_html(report, html, fund_name=config.fund.name, now=now,
                               timezone=timezone)
        if not as_json:
            err.print(f"Rapport HTML écrit : {html}")
    if as_json:
        print_json({**report, **({"check": breaches} if check else {})})
    else:
        render.finance(report)
    if check:
        if breaches:
            for breach in breaches:
                err.print(line(("Invariant violé :", "bold red"), " ", breach))
            raise typer.Exit(1)
        if not as_json:
            out.print(line(("Tous les invariants du grand livre sont vérifiés.", "green")))

