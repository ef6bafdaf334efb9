"""Instruction: reviewers, review assign/score, committee propose/decide."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from odd17.cli import app, render
from odd17.cli._common import (
    JsonFlag,
    check_references,
    existing_engine,
    fail,
    out,
    parse_amount_option,
    policy_threshold,
    print_json,
    ready_engine,
    user_errors,
)
from odd17.display import line
from rules.money import as_str, eur

reviewers_app = typer.Typer(help="Évaluateurs et membres du comité.", no_args_is_help=True)
app.add_typer(reviewers_app, name="reviewers")
review_app = typer.Typer(help="Instruction : désignation des évaluateurs, notation.",
                         no_args_is_help=True)
app.add_typer(review_app, name="review")
committee_app = typer.Typer(help="Comité : proposition et décisions.", no_args_is_help=True)
app.add_typer(committee_app, name="committee")



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

    from odd17.db import unit_of_work
    from odd17.runtime import utcnow
    from odd17.services import review
    from rules.document import explain

    try:
        data = review.ReviewerIn(name=name, email=email, siren=siren, interests=interest or [],
                                 committee=committee, reviews=not no_reviews)
    except ValidationError as exc:
        fail("; ".join(f"{e['field']} : {e['message']}" for e in explain(exc)))
    with user_errors(), unit_of_work(ready_engine()) as session:
        _, created = review.add_reviewer(session, data, utcnow())
    if as_json:
        print_json({"email": data.email, "created": created})
        return
    out.print(line(f"{data.email} {'ajouté' if created else 'mis à jour'}."))


@reviewers_app.command("import")
def reviewers_import(file: Path, as_json: JsonFlag = False) -> None:
    """Importe des évaluateurs (CSV : name,email,siren,interests,committee ; ou JSON)."""
    from odd17.db import unit_of_work
    from odd17.runtime import utcnow
    from odd17.services import review

    with user_errors():
        rows = review.read_reviewers(file)
        with unit_of_work(ready_engine()) as session:
            report = review.import_reviewers(session, rows, utcnow())
    if as_json:
        print_json({"created": report.created, "updated": report.updated,
                    "refused": report.refused})
    else:
        render.import_report(report)
    raise typer.Exit(1 if report.refused else 0)


@reviewers_app.command("list")
def reviewers_list(as_json: JsonFlag = False) -> None:
    """Liste les évaluateurs et membres du comité."""
    from odd17.db import unit_of_work
    from odd17.services import review

    with user_errors(), unit_of_work(existing_engine()) as session:
        rows = review.list_reviewers(session)
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
    from odd17.db import unit_of_work
    from odd17.runtime import actor, utcnow
    from odd17.services import review
    from odd17.settings import get_fund_config

    if not references and not all_:
        fail("précisez des références ou --all")
    with user_errors(), unit_of_work(ready_engine()) as session:
        if references and not all_:
            check_references(session, references, allowed=[Status.eligible],
                             why="seuls les dossiers éligibles reçoivent des évaluateurs")
        result = review.assign(session, None if all_ else references,
                               get_fund_config().review, actor=actor("cli"), now=utcnow())
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
    from odd17.db import unit_of_work
    from odd17.runtime import actor, utcnow
    from odd17.services import review
    from odd17.settings import get_fund_config
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
    with user_errors(), unit_of_work(ready_engine()) as session:
        value_ = review.score(session, reference, reviewer, scores, comment,
                              get_fund_config().review, actor=actor("cli"), now=utcnow())
    out.print(line(f"{reference.upper()} : note pondérée {score_fr(value_)} enregistrée pour "
                   f"{reviewer}."))


@committee_app.command("propose")
def committee_propose(as_json: JsonFlag = False) -> None:
    """Propose, par note décroissante, les dossiers finançables dans l'enveloppe restante
    (ne modifie rien)."""
    from odd17.db import unit_of_work
    from odd17.services import review
    from odd17.settings import get_fund_config

    policy = get_fund_config().review
    with user_errors(), unit_of_work(existing_engine()) as session:
        if as_json:
            print_json(review.proposal(session, alert_threshold=policy_threshold(),
                                       policy=policy))
            return
        ranked = review.ranking(session, alert_threshold=policy_threshold(), policy=policy)
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
    from odd17.runtime import actor, utcnow
    from odd17.services import committee
    from odd17.settings import get_fund_config

    if approve + reject + defer != 1:
        fail("choisissez exactement une décision : --approve, --reject ou --defer")
    outcome = "approve" if approve else "reject" if reject else "defer"
    config = get_fund_config()
    members = [e for e in present.split(",") if e.strip()]
    with user_errors():
        result = committee.decide(
            ready_engine(), reference, outcome, present=members,
            amount=parse_amount_option(amount, "--amount"), motif=motif,
            plan=config.disbursement.plan(),
            alert_threshold=config.disbursement.alert_threshold, actor=actor("cli"),
            now=utcnow())
    if as_json:
        print_json({"reference": reference.upper(), "outcome": outcome,
                    "amount": as_str(result.amount) if result else None})
        return
    words = {"approve": "accord", "reject": "refus", "defer": "report"}
    out.print(line(f"{reference.upper()} : {words[outcome]} enregistré et appliqué"
                   + (f" ({eur(result.amount)} engagés)." if result else ".")))
    render.alert(result.moved if result else None)
