"""Instruction: reviewers, review assign/score, committee propose/decide."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from odd17.cli import app, render
from odd17.cli._common import (
    JsonFlag,
    check_references,
    cli_context,
    existing_engine,
    fail,
    out,
    parse_amount_option,
    print_json,
    ready_engine,
    user_errors,
)
from odd17.display import line
from rules.money import as_str, eur

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from odd17.uow import Runner, UnitOfWork

reviewers_app = typer.Typer(help="Évaluateurs et membres du comité.", no_args_is_help=True)
app.add_typer(reviewers_app, name="reviewers")
review_app = typer.Typer(help="Instruction : désignation des évaluateurs, notation.",
                         no_args_is_help=True)
app.add_typer(review_app, name="review")
committee_app = typer.Typer(help="Comité : proposition et décisions.", no_args_is_help=True)
app.add_typer(committee_app, name="committee")


def _runner(engine: Engine) -> Runner:
    """The CLI's runner: its actor (ODD17_ACTOR, else cli:<login>) and the configured fund."""
    from odd17.uow import Runner

    return Runner(engine, cli_context())


def _uow(engine: Engine) -> AbstractContextManager[UnitOfWork]:
    """One transaction for one use case (committed at the end of the block)."""
    return _runner(engine).uow()

@reviewers_app.command("add")
def reviewers_add(
    name: Annotated[str, typer.Option("--name")],
    email: Annotated[str, typer.Option("--email")],
    siren: Annotated[str | None, typer.Option("--siren", help="SIREN de son organisation.")]
    = None,
    interest: Annotated[list[str] | None, typer.Option("--interest", help="SIREN d'un intérêt "
                                                       "déclaré (répétable).")] = None,
    committee: Annotated[bool, typer.Option("--committee", help="Membre du comité.")] = False,
    no_reviews: Annotated[bool, typer.Option("--no-reviews", help="Ne reçoit pas de dossiers "
                                             "à évaluer.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Ajoute ou met à jour (par e-mail) un évaluateur ou membre du comité."""
    from pydantic import ValidationError

    from odd17.services import reviewers
    from rules.document import explain

    try:
        data = reviewers.ReviewerIn(name=name, email=email, siren=siren, interests=interest or [],
                                 committee=committee, reviews=not no_reviews)
    except ValidationError as exc:
        fail("; ".join(f"{e['field']} : {e['message']}" for e in explain(exc)))
    with user_errors(), _uow(ready_engine()) as uow:
        _, created = reviewers.add_reviewer(uow, data)
    if as_json:
        print_json({"email": data.email, "created": created})
        return
    out.print(line(f"{data.email} {'ajouté' if created else 'mis à jour'}."))


@reviewers_app.command("import")
def reviewers_import(file: Path, as_json: JsonFlag = False) -> None:
    """Importe des évaluateurs (CSV : name,email,siren,interests,committee ; ou JSON)."""
    from odd17.services import reviewers

    with user_errors():
        rows = reviewers.read_reviewers(file)
        with _uow(ready_engine()) as uow:
            report = reviewers.import_reviewers(uow, rows)
    if as_json:
        print_json({"created": report.created, "updated": report.updated,
                    "refused": report.refused})
    else:
        render.import_report(report)
    raise typer.Exit(1 if report.refused else 0)


@reviewers_app.command("list")
def reviewers_list(as_json: JsonFlag = False) -> None:
    """Liste les évaluateurs et membres du comité."""
    from odd17.services import reviewers

    with user_errors(), _uow(existing_engine()) as uow:
        rows = reviewers.list_reviewers(uow)
    if as_json:
        print_json(rows)
        return
    render.reviewers(rows)


@review_app.command("assign")
def review_assign(
    references: Annotated[list[str] | None, typer.Argument()] = None,
    all_: Annotated[bool, typer.Option("--all", help="Tous les dossiers éligibles.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Désigne les évaluateurs (sans conflit d'intérêts, les moins chargés d'abord)."""
    from models import Status
    from odd17.services import assignment

    if not references and not all_:
        fail("précisez des références ou --all")
    with user_errors(), _uow(ready_engine()) as uow:
        if references and not all_:
            check_references(uow.session, references, allowed=[Status.eligible],
                             why="seuls les dossiers éligibles reçoivent des évaluateurs")
        result = assignment.assign(uow, None if all_ else references)
    if as_json:
        print_json({"assigned": result.assigned, "short": result.short})
        return
    render.assignment(result)


@review_app.command("score")
def review_score(
    reference: str,
    notes: Annotated[list[str], typer.Argument(help="critère=note, ex. pertinence=4")],
    reviewer: Annotated[str, typer.Option("--reviewer", help="E-mail de l'évaluateur.")],
    comment: Annotated[str, typer.Option("--comment", help="Commentaire motivé.")],
) -> None:
    """Enregistre les notes d'un évaluateur (grille : entiers de 0 à 5)."""
    from odd17.services import scoring
    from rules.review import collect_scores, score_fr

    pairs: list[tuple[str, Any]] = []
    for note in notes:
        key, sep, value = note.partition("=")
        if not sep:
            fail(f"« {note} » : format critère=note attendu")
        try:
            pairs.append((key.strip(), int(value)))
        except ValueError:
            pairs.append((key.strip(), value))
    scores, repeated = collect_scores(pairs)
    if repeated:
        fail(f"{reference.upper()} : grille invalide : {'; '.join(repeated)}")
    with user_errors(), _uow(ready_engine()) as uow:
        value_ = scoring.score(uow, reference, reviewer, scores, comment)
    out.print(line(f"{reference.upper()} : note pondérée {score_fr(value_)} enregistrée pour "
                   f"{reviewer}."))


@committee_app.command("propose")
def committee_propose(as_json: JsonFlag = False) -> None:
    """Propose, par note décroissante, les dossiers finançables dans l'enveloppe restante
    (ne modifie rien)."""
    from odd17.services import scoring

    with user_errors(), _uow(existing_engine()) as uow:
        if as_json:
            print_json(scoring.proposal(uow))
            return
        ranked = scoring.ranking(uow)
    render.proposal(ranked)


@committee_app.command("decide")
def committee_decide(
    reference: str,
    present: Annotated[str, typer.Option("--present", help="E-mails des membres présents, "
                                         "séparés par des virgules.")],
    approve: Annotated[bool, typer.Option("--approve")] = False,
    reject: Annotated[bool, typer.Option("--reject")] = False,
    defer: Annotated[bool, typer.Option("--defer")] = False,
    amount: Annotated[str | None, typer.Option("--amount", help="Montant accordé (défaut : "
                                               "le montant demandé).")] = None,
    motif: Annotated[str, typer.Option("--motif", help="Motivation (obligatoire pour un "
                                       "refus).")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Décision du comité : accord (réserve le montant), refus motivé, ou report."""
    from odd17.services import committee

    if approve + reject + defer != 1:
        fail("choisissez exactement une décision : --approve, --reject ou --defer")
    outcome = "approve" if approve else "reject" if reject else "defer"
    members = [e for e in present.split(",") if e.strip()]
    granted = parse_amount_option(amount, "--amount")
    with user_errors():
        result = committee.decide(_runner(ready_engine()), reference, outcome,
                                  present=members, amount=granted, motif=motif)
    if as_json:
        print_json({"reference": reference.upper(), "outcome": outcome,
                    "amount": as_str(result.amount) if result else None})
        return
    words = {"approve": "accord", "reject": "refus", "defer": "report"}
    out.print(line(f"{reference.upper()} : {words[outcome]} enregistré et appliqué"
                   + (f" ({eur(result.amount)} engagés)." if result else ".")))
    render.alert(result.moved if result else None)
