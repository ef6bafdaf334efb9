"""Intake + eligibility throughput, against a bare baseline measured in the same run.

    python bench/intake.py [N]          (default N = 10,000)

1. baseline: read the .jsonl, pydantic validation, one SQLAlchemy bulk INSERT of the
   application rows; no Prefect, no eligibility, no history.
2. odd17 services without Prefect (what `odd17 submit` does).
3. odd17 end to end: the `intake` then `eligibility` Prefect flows (ephemeral server started
   and warmed up before the clock starts; its start-up time is printed separately).

Each run uses a fresh SQLite database initialised beforehand (not timed); each figure is the
median of BENCH_REPEATS runs (default 3). Prefect 3.8 ends every flow run by joining its
heartbeat thread, which sleeps in 1 s steps: up to ~1 s per run whatever the size, so the flows
are also timed with heartbeats off, and on 10 applications.

Targets on SQLite, 2 cores: end to end >= 3,000 applications/s, and end-to-end time
<= 2.5 x baseline time."""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

WORK = Path(tempfile.mkdtemp(prefix="odd17-bench-"))
os.environ.setdefault("PREFECT_HOME", str(WORK / "prefect"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings  # noqa: E402
from sqlalchemy import insert  # noqa: E402
from stdnum import luhn  # noqa: E402

from models import Application, Organisation  # noqa: E402
from odd17.db import dispose_engines, make_engine, unit_of_work  # noqa: E402
from odd17.runtime import utcnow  # noqa: E402
from odd17.services import intake  # noqa: E402
from odd17.services.batching import gc_paused  # noqa: E402
from odd17.services.pipeline import submit_and_evaluate  # noqa: E402
from odd17.services.setup import init_database  # noqa: E402
from odd17.settings import get_fund_config, get_settings, reset_caches  # noqa: E402
from rules.document import ApplicationDocument  # noqa: E402

KINDS = ["association", "fondation", "entreprise", "collectivite", "etat", "academique"]
DEPARTMENTS = ["75", "13", "69", "2A", "29", "59", "974", "971", "973", "20", "99", "31"]


def siret(n: int) -> str:
    siren = f"{n % 10**8:08d}"
    siren += luhn.calc_check_digit(siren)
    base = siren + "0001"
    return base + luhn.calc_check_digit(base)


def generate(n: int, path: Path) -> None:
    rng = random.Random(17)
    with path.open("w") as out:
        for i in range(n):
            lead_kind = rng.choice(KINDS[:2] * 3 + KINDS)
            requested = rng.choice([3000, 12000, 45000, 80000, 120000, 199000, 250000])
            doc = {
                "title": f"Alliance territoriale n°{i} pour le jouer collectif",
                "summary": "Projet d'alliance entre acteurs du territoire. " * rng.randint(1, 6),
                "lead": {"name": f"Porteur {i}", "kind": lead_kind, "siret": siret(i),
                         "email": f"porteur{i}@example.org", "contact_name": "Claire Martin"},
                "partners": [{"name": f"Partenaire {i}-{j}", "kind": rng.choice(KINDS),
                              "siret": siret(10**7 + i * 3 + j)}
                             for j in range(rng.randint(0, 3))],
                "objectives": rng.sample(["dialogue", "ingenierie", "experimentation"],
                                         rng.randint(0, 3)),
                "innovations": rng.sample(["solutions", "co_construction", "modele_hybride"],
                                          rng.randint(0, 2)),
                "territory": {"department": rng.choice(DEPARTMENTS)},  # region derived
                "requested_amount": f"{requested}.00",
                "total_budget": f"{int(requested * rng.choice([1.1, 1.5, 2, 3]))}.00",
                "cofunding": [{"funder": "Région", "kind": "collectivite", "amount": "5000.00"}],
                "start_date": "2027-03-01",
                "duration_months": rng.choice([4, 12, 24, 36, 48]),
                "documents": rng.choice([["statuts", "budget_previsionnel", "rib"],
                                         ["statuts", "rib"]]),
            }
            out.write(json.dumps(doc, ensure_ascii=False) + "\n")


def fresh_database(name: str) -> str:
    url = f"sqlite:///{WORK / name}.db"
    engine = make_engine(url)
    init_database(engine, get_fund_config(), utcnow())
    engine.dispose()
    os.environ["ODD17_DATABASE_URL"] = url
    reset_caches()
    dispose_engines()
    return url


def baseline(path: Path) -> float:
    engine = make_engine(fresh_database(f"baseline-{time.monotonic_ns()}"))
    start = time.perf_counter()
    now = utcnow()
    with gc_paused():  # the same runtime tuning as odd17's own batches: a fair baseline
        docs = [ApplicationDocument.model_validate(json.loads(line))
                for line in path.read_text().splitlines()]
    with gc_paused(), unit_of_work(engine) as session:
        lead_id = session.execute(insert(Organisation).returning(Organisation.id), {
            "identifier": "bench", "name": "bench", "kind": "association", "created_at": now,
        }).scalar_one()
        session.execute(insert(Application), [
            {"reference": f"B-{i}", "call_id": "aap-2026", "lead_id": lead_id,
             "dedup_key": doc.dedup_key(), "status": "submitted", "title": doc.title,
             "contact_email": str(doc.lead.email), "primary_objective": doc.primary_objective,
             "region": doc.territory.region or "", "department": doc.territory.department,
             "requested_amount": doc.requested_amount, "total_budget": doc.total_budget,
             "source": str(path), "document": doc.model_dump(mode="json", exclude_none=True),
             "submitted_at": now, "updated_at": now}
            for i, doc in enumerate(docs)
        ])
    elapsed = time.perf_counter() - start
    engine.dispose()
    return elapsed


def services_only(path: Path) -> tuple[float, dict[str, int]]:
    from odd17.db import get_engine

    fresh_database(f"services-{time.monotonic_ns()}")
    engine = get_engine()
    start = time.perf_counter()
    outcomes = submit_and_evaluate(
        engine, intake.read_sources([path]), get_fund_config().policy(), now=utcnow(),
        actor="bench", language="fr", batch_size=get_settings().batch_size,
    )
    elapsed = time.perf_counter() - start
    return elapsed, _count(o.status for o in outcomes)


def start_prefect() -> float:
    from prefect import flow

    @flow
    def warm_up() -> None:
        pass

    start = time.perf_counter()
    warm_up()  # starts the ephemeral server (and runs its migrations the first time)
    return time.perf_counter() - start


def with_prefect(path: Path) -> tuple[float, dict[str, int]]:
    from flows.eligibility import eligibility_flow
    from flows.intake import intake_flow

    fresh_database(f"prefect-{time.monotonic_ns()}")
    start = time.perf_counter()
    intake_flow(paths=[str(path)])
    summary = eligibility_flow()
    elapsed = time.perf_counter() - start
    return elapsed, {"eligible": summary["eligible"], "ineligible": summary["ineligible"]}


def _count(statuses) -> dict[str, int]:  # type: ignore[no-untyped-def]
    counts: dict[str, int] = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    return counts


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    repeats = int(os.environ.get("BENCH_REPEATS", "3"))
    path = WORK / "applications.jsonl"
    generate(n, path)
    tiny = WORK / "tiny.jsonl"
    generate(10, tiny)
    batch = get_settings().batch_size
    print(f"odd17 intake benchmark: {n} applications, SQLite, {os.cpu_count()} CPU(s), "
          f"batches of {batch}, median of {repeats} runs")
    startup = start_prefect()
    base = median([baseline(path) for _ in range(repeats)])
    svc_runs = [services_only(path) for _ in range(repeats)]
    svc = median([t for t, _ in svc_runs])
    e2e_runs = [with_prefect(path) for _ in range(repeats)]
    e2e = median([t for t, _ in e2e_runs])
    fixed = median([with_prefect(tiny)[0] for _ in range(repeats)])
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        quiet = median([with_prefect(path)[0] for _ in range(repeats)])
        quiet_fixed = median([with_prefect(tiny)[0] for _ in range(repeats)])
    rows = [("baseline (validate + 1 bulk insert)", base), ("services, no Prefect", svc),
            ("intake + eligibility flows (Prefect)", e2e),
            ("  the same, flow heartbeats off", quiet)]
    for label, seconds in rows:
        print(f"  {label:<40} {seconds:7.2f} s  {n / seconds:9,.0f} applications/s  "
              f"ratio {seconds / base:4.2f}")
    print(f"  the two flow runs on 10 applications: {fixed:.2f} s ({quiet_fixed:.2f} s with "
          "heartbeats off: Prefect 3.8 joins a heartbeat thread that sleeps in 1 s steps)")
    print(f"  Prefect ephemeral server start (not counted): {startup:.1f} s")
    counts = e2e_runs[0][1]
    print(f"  outcomes: {dict(sorted(counts.items()))}")
    assert all(c == counts for _, c in e2e_runs), "the flows must give the same verdicts"
    assert svc_runs[0][1] == counts, (svc_runs[0][1], counts)
    print(f"end-to-end: {n / e2e:,.0f} applications/s (target >= 3,000); "
          f"ratio to baseline {e2e / base:.2f} (target <= 2.5)")


if __name__ == "__main__":
    main()
