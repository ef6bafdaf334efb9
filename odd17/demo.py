"""``odd17 demo``: the whole cycle on the sample data, on the embedded defaults.

A fresh SQLite database and mail folder in a folder of the demo's own, Prefect's ephemeral
server, and every stage through its flow: intake, eligibility, review (reviewers from the
sample file, conflicts caught), scores, committee decisions, payments, emails. It ends with the
finance report and where everything is. Running it again starts over."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from rules.labels import message_status_label, status_label

SAMPLES = "data/samples"
COMMITTEE_PRESENT = 4  # of the 5 members in the sample file
# The fund's staff in the demo (clearly fake addresses), made as `odd17 users add` makes them.
STAFF = {"manager": "charge.mission@demo.example.org",
         "finance": "finance@demo.example.org",
         "admin": "admin@demo.example.org"}
# How the browser hint names each role (tests/test_demo.py reads the hint back by these).
ROLE_LABELS = {"applicant": "porteur de projet", "reviewer": "évaluateur",
               "committee": "membre du comité", "manager": "chargé de mission",
               "finance": "responsable financier", "admin": "administrateur"}


def sample_path(name: str = "applications.jsonl") -> Path:
    return Path(str(resources.files("odd17").joinpath(f"{SAMPLES}/{name}")))


def prepare(folder: Path) -> str:
    """Empty the demo's folder and point odd17 at it (database, emails)."""
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{folder / 'odd17.db'}{suffix}").unlink(missing_ok=True)
    shutil.rmtree(folder / "emails", ignore_errors=True)
    url = f"sqlite:///{folder / 'odd17.db'}"
    os.environ["ODD17_DATABASE_URL"] = url
    os.environ["ODD17_MAIL_TRANSPORT"] = "eml"
    os.environ["ODD17_MAIL_DIR"] = str(folder / "emails")
    for key, value in {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}.items():
        os.environ.setdefault(key, value)
    os.environ["PREFECT_LOGGING_LEVEL"] = "ERROR"  # the demo tells its own story below
    return url


def notes(reference: str, email: str, criteria: list[str]) -> dict[str, int]:
    """A reviewer's scores for the demo: 2 to 5, stable from one run to the next."""
    digest = hashlib.sha256(f"{reference}|{email}".encode()).digest()
    return {c: 2 + digest[i] % 4 for i, c in enumerate(criteria)}


@contextmanager
def _busy(console: Console, label: str) -> Iterator[None]:
    """A spinner while Prefect works, on an interactive terminal only."""
    if console.is_terminal:
        with console.status(label):
            yield
    else:
        yield


def run(folder: Path, console: Console) -> int:
    url = prepare(folder)
    from flows.common import local_runs  # after prepare(): Prefect reads the environment

    with local_runs():  # in-process flow runs: no 1 s heartbeat wait at the end of each
        return _run(folder, console, url)


def _run(folder: Path, console: Console, url: str) -> int:
    # Imported here: settings and Prefect must see the environment set above.
    from sqlalchemy import select

    from flows.disbursement import disbursement_flow
    from flows.eligibility import eligibility_flow
    from flows.intake import intake_flow
    from flows.outbox import outbox_flow
    from flows.review import review_flow
    from models import Application, Recusal, Reviewer, Status
    from odd17 import reports
    from odd17.db import dispose_engines, get_engine, unit_of_work
    from odd17.runtime import utcnow
    from odd17.services import (
        audit,
        committee,
        exports,
        finance,
        outbox,
        queries,
        reviewers,
        scoring,
        setup,
    )
    from odd17.settings import get_fund_config, redact_url, reset_caches
    from odd17.uow import Context, open_uow
    from rules.money import eur

    reset_caches()
    dispose_engines()
    config = get_fund_config()
    engine = get_engine()
    fund = setup.init_database(engine, config, utcnow())
    say = console.print
    console.rule(f"[bold]{fund.name}[/] — démonstration du cycle complet")
    say(f"Enveloppe {eur(fund.envelope)} ; appel à projets ouvert pour douze mois.")
    say("Démarrage de Prefect (serveur éphémère)…")

    say("\n[bold]1. Dépôt et éligibilité[/] (flows intake et eligibility)")
    with _busy(console, "Dépôt et éligibilité…"):
        intake = intake_flow(paths=[str(sample_path())])
        verdicts = eligibility_flow()  # judged by intake; this one finds what was left
    by_rule = dict(intake["failing_by_rule"])
    for rule, n in verdicts["failing_by_rule"].items():
        by_rule[rule] = by_rule.get(rule, 0) + n
    failing = ", ".join(f"{rule} {n}" for rule, n in sorted(by_rule.items()))
    eligible = intake["eligible"] + verdicts["eligible"]
    ineligible = intake["ineligible"] + verdicts["ineligible"]
    say(f"   {intake['received']} documents : {intake['created']} dossiers, "
        f"{intake['duplicates']} doublon reconnu, {len(intake['refused'])} refusés au format ; "
        f"{eligible} éligibles, {ineligible} inéligibles "
        f"(règles en échec : {failing}).")
    for refusal in intake["refused"]:
        first = refusal["errors"][0]
        more = f" (+{len(refusal['errors']) - 1})" if len(refusal["errors"]) > 1 else ""
        say(f"   refusé {Path(refusal['source']).name} — {first['field']} : "
            f"{first['message']}{more}")

    say("\n[bold]2. Instruction[/] (évaluateurs du fichier d'exemple, flow review)")
    context = Context.from_settings("demo", config=config)
    with open_uow(engine, context) as uow:
        imported = reviewers.import_reviewers(uow, reviewers.read_reviewers(
            sample_path("reviewers.csv")))
    assigned = review_flow()
    with unit_of_work(engine) as session:
        recusals = session.execute(select(Recusal, Application.reference).join(
            Application, Application.id == Recusal.application_id)).all()
        for recusal, reference in recusals:
            say(f"   conflit d'intérêts : {recusal.reviewer.email} écarté de {reference} — "
                f"{recusal.reason}")
    say(f"   {imported.created} évaluateurs et membres du comité ; {assigned['assigned']} "
        f"dossiers confiés à deux évaluateurs chacun.")
    policy = config.review
    criteria = list(policy.weights)
    with open_uow(engine, context) as uow:
        in_review = uow.session.scalars(select(Application).where(
            Application.status == Status.in_review).order_by(Application.id)).all()
        for app in in_review:
            for r in scoring.review_detail(uow.session, app, policy)["reviews"]:
                # each reviewer acts in their own name, in this one transaction
                as_reviewer = replace(uow, context=replace(context, actor=r["reviewer"]))
                scoring.score(as_reviewer, app.reference, r["reviewer"],
                              notes(app.reference, r["reviewer"], criteria),
                              "Évaluation de démonstration.")
    say(f"   {len(in_review) * 2} évaluations notées ; dossiers devant le comité.")

    say("\n[bold]3. Comité[/] (proposition, décisions enregistrées, appliquées par le flow)")
    with open_uow(engine, replace(context, actor="comite")) as uow:
        proposal = scoring.proposal(uow)
        members = [m.email for m in uow.session.scalars(
            select(Reviewer).where(Reviewer.committee)
            .order_by(Reviewer.email))][:COMMITTEE_PRESENT]
        ranked = proposal["applications"]
        funded = [p for p in ranked if p["proposed"]]
        for item in funded[:-1]:
            committee.record_decision(uow, item["reference"], "approve", present=members,
                                      amount=None, motif="")
        rejected = [p for p in ranked if not p["proposed"]][:2] or funded[-1:]
        for item in rejected:
            committee.record_decision(
                uow, item["reference"], "reject", present=members, amount=None,
                motif="Le projet n'entre pas dans l'enveloppe restante au regard de son rang.")
    decisions = review_flow()
    say(f"   {len(funded) - 1} accords et {len(rejected)} refus motivés appliqués "
        f"({decisions['applied']} décisions ; présents : {', '.join(members)}).")

    say("\n[bold]4. Versements[/] (relevé bancaire, flow disbursement)")
    with unit_of_work(engine) as session:
        approved = session.scalars(select(Application.reference).where(
            Application.status == Status.approved).order_by(Application.id)).all()
    statement = folder / "releve-paiements.jsonl"
    statement.write_text("".join(json.dumps({
        "reference": ref, "tranche": 1, "payment_reference": f"VIR-DEMO-{i:04d}",
        "date": utcnow().date().isoformat()}) + "\n" for i, ref in enumerate(approved)))
    paid = disbursement_flow(payment_files=[str(statement)])
    say(f"   {paid['recorded']} premières tranches versées ; "
        f"{len(paid['tranches_due'])} tranche(s) échue(s) restant à verser.")
    if paid["envelope"]["alert"]:
        say(f"   [yellow]alerte enveloppe : disponible "
            f"{eur(Decimal(paid['envelope']['available']))}, sous "
            f"{Decimal(paid['envelope']['alert_threshold']) * 100:.0f} % de l'enveloppe.[/]")

    say("\n[bold]5. Courriels[/] (flow outbox, fichiers .eml)")
    sent = outbox_flow()
    say(f"   {sent['sent']} courriels écrits dans {folder / 'emails'}.")

    report_path, scdl, giving = (folder / "rapport-financier.html",
                                 folder / "subventions-scdl.csv", folder / "subventions-360.json")
    with open_uow(engine, Context.from_settings("odd17 demo", config=config)) as uow:
        report = finance.finance_report(uow, on=uow.now.date())
        breaches = audit.check(uow)
        counts = queries.count_by_status(uow.session)
        lead = uow.session.scalars(select(Application.contact_email)
                                   .order_by(Application.id)).first()
        exports.write_scdl(uow, scdl)
        exports.write_360giving(uow, giving)
        mails = outbox.counts(uow)
    reports.write_html(report, report_path, fund_name=config.fund.name, now=utcnow())

    console.rule("[bold]Situation de l'enveloppe[/]")
    table = Table("enveloppe", "engagé", "versé", "disponible", "subventions")
    table.add_row(*(eur(Decimal(report[k])) for k in ("envelope", "committed", "disbursed",
                                                       "available")), str(report["grants"]))
    say(table)
    say("Invariants du grand livre : " + ("[green]tous vérifiés[/]" if not breaches
                                          else f"[red]{len(breaches)} violation(s)[/]"))
    say("Dossiers par statut : " + ", ".join(f"{status_label(s)} {n}"
                                              for s, n in sorted(counts.items())))
    say("Courriels : " + ", ".join(f"{message_status_label(s)} {n}"
                                   for s, n in sorted(mails.items())))
    say("\n[bold]Où trouver[/]")
    for label, path in (("base de données", folder / "odd17.db"),
                        ("courriels (.eml)", folder / "emails"),
                        ("rapport financier HTML", report_path),
                        ("export SCDL Subventions", scdl), ("export 360Giving", giving)):
        say(f"  {label:<24} {path}")
    say(f"\nPour explorer : ODD17_DATABASE_URL={redact_url(url)} odd17 list | "
        "odd17 show RÉFÉRENCE | odd17 finance")
    accounts = _demo_accounts(engine, context, lead)
    _browser_hint(console, folder, url, accounts)
    dispose_engines()
    return 1 if breaches else 0


def _demo_accounts(engine: Any, context: Any, lead: str | None) -> dict[str, str]:
    """One address per role to sign in with: the staff accounts, created here through the use
    case of `odd17 users add`, and people of the sample data (a lead, a reviewer with
    applications to score, a committee member)."""
    from sqlalchemy import select

    from models import Review, Reviewer
    from odd17.services import accounts
    from odd17.uow import open_uow

    with open_uow(engine, context) as uow:
        for role, address in STAFF.items():
            accounts.add_user(uow, address, role)
        reviewer = uow.session.scalars(
            select(Reviewer.email).join(Review, Review.reviewer_id == Reviewer.id)
            .where(Reviewer.reviews, Reviewer.active).order_by(Reviewer.email)).first()
        member = uow.session.scalars(select(Reviewer.email).where(
            Reviewer.committee, Reviewer.active).order_by(Reviewer.email)).first()
    found = {"applicant": lead, "reviewer": reviewer, "committee": member, **STAFF}
    return {role: address for role, address in found.items() if address}


def _browser_hint(console: Console, folder: Path, url: str, people: dict[str, str]) -> None:
    """How to open the same data in the portal: the command, an address per role, where the
    sign-in links arrive. Commands are printed unwrapped, to be copied whole."""
    from shlex import quote

    from rich.markup import escape

    from odd17.settings import get_settings, redact_url

    mails = folder.resolve() / "emails"
    if url.startswith("sqlite:///"):  # the demo's own file, named from anywhere
        url = f"sqlite:///{folder.resolve() / 'odd17.db'}"
    env = (f"ODD17_DATABASE_URL={quote(redact_url(url))} ODD17_MAIL_TRANSPORT=eml "
           f"ODD17_MAIL_DIR={quote(str(mails))}")
    say = console.print
    say("\n[bold]Dans le navigateur[/] (les mêmes données)")
    say("  1. démarrer le portail :")
    say(f"     {escape(env)} odd17 web", soft_wrap=True)
    say(f"  2. ouvrir {escape(get_settings().public_url)}/connexion et taper l'adresse d'un "
        "compte de démonstration :")
    for role, address in people.items():
        say(f"       {ROLE_LABELS[role]:<22} {escape(address)}")
    say(f"  3. le lien de connexion arrive par courriel, un fichier .eml dans {escape(str(mails))}"
        ", une fois la file d'envoi vidée (dans un autre terminal) :", soft_wrap=True)
    say(f"     {escape(env)} odd17 outbox send", soft_wrap=True)
    say("     (avec « odd17 serve » au lieu de « odd17 web », les courriels partent seuls, chaque "
        "minute).")
