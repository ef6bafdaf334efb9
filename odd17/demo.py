"""``odd17 demo``: the main job on the embedded defaults, on the sample applications.

A fresh SQLite database in a folder of its own, Prefect's ephemeral server, the ``intake`` and
``eligibility`` flows, then a summary a fund manager can read. Running it again starts over
(the folder is the demo's own), so it works any number of times."""

from __future__ import annotations

import os
from decimal import Decimal
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.table import Table

SAMPLES = "data/samples/applications.jsonl"


def sample_path() -> Path:
    return Path(str(resources.files("odd17").joinpath(SAMPLES)))


def prepare(folder: Path) -> str:
    """Empty the demo folder's database and point odd17 at it."""
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "odd17.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{db}"
    os.environ["ODD17_DATABASE_URL"] = url
    # Offline, quiet Prefect unless the user said otherwise.
    for key, value in {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
                       "PREFECT_LOGGING_LEVEL": "WARNING"}.items():
        os.environ.setdefault(key, value)
    return url


def run(folder: Path, console: Console) -> int:
    url = prepare(folder)
    # Imported here: settings and Prefect must see the environment set above.
    from flows.eligibility import eligibility_flow
    from flows.intake import intake_flow
    from models import Status
    from odd17.db import dispose_engines, get_engine, unit_of_work
    from odd17.runtime import utcnow
    from odd17.services import queries, setup
    from odd17.settings import get_fund_config, reset_caches
    from rules.money import eur

    reset_caches()
    dispose_engines()
    config = get_fund_config()
    fund = setup.init_database(get_engine(), config, utcnow())
    console.rule(f"[bold]{fund.name}[/] — démonstration")
    console.print(f"Enveloppe {eur(fund.envelope)} ; base {url}")
    console.print("Démarrage de Prefect (serveur éphémère) et dépôt des dossiers d'exemple…")
    intake = intake_flow(paths=[str(sample_path())])
    verdicts = eligibility_flow()

    with unit_of_work() as session:
        counts = queries.count_by_status(session)
        eligible = queries.list_applications(session, Status.eligible)
        ineligible = queries.eligibility_report(session, Status.ineligible)

    console.print(
        f"\n{intake['received']} documents reçus : {intake['created']} dossiers enregistrés, "
        f"{intake['duplicates']} doublon(s) reconnu(s), {len(intake['refused'])} refusé(s) "
        f"au format ; {verdicts['evaluated']} évalué(s) : {verdicts['eligible']} éligible(s), "
        f"{verdicts['ineligible']} inéligible(s)."
    )
    table = Table("référence", "titre", "objectif", "dépt", "montant demandé",
                  title=f"Dossiers éligibles ({len(eligible)})")
    total = Decimal(0)
    for row in eligible:
        amount = Decimal(row["requested_amount"])
        total += amount
        table.add_row(row["reference"], row["title"], row["primary_objective"] or "—",
                      row["department"], eur(amount))
    console.print(table)
    console.print(f"Total demandé par les dossiers éligibles : {eur(total)} "
                  f"pour une enveloppe de {eur(fund.envelope)}.")

    table = Table("référence", "titre", "règles non satisfaites", "motif",
                  title=f"Dossiers inéligibles ({len(ineligible)})")
    for row in ineligible:
        table.add_row(row["reference"], row["title"],
                      ", ".join(f["rule"] for f in row["failing"]),
                      row["failing"][0]["reason"] if row["failing"] else "")
    console.print(table)

    table = Table("source", "champ", "message",
                  title=f"Documents refusés au format ({len(intake['refused'])})")
    for refusal in intake["refused"]:
        source = refusal["source"].rsplit("/", 1)[-1]
        for error in refusal["errors"]:
            table.add_row(source, error["field"], error["message"])
            source = ""
    console.print(table)

    console.print("Dossiers par statut : " + ", ".join(
        f"{status} {n}" for status, n in sorted(counts.items())))
    console.print(f"\nBase de données : {folder / 'odd17.db'}")
    console.print(f"Pour explorer : ODD17_DATABASE_URL={url} odd17 show "
                  f"{intake['first_reference']}   (ou odd17 list --status ineligible)")
    dispose_engines()
    return 0
