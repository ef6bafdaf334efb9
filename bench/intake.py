"""Intake + eligibility throughput, and the fixed cost of a flow run, against baselines
measured in the same run.

    python bench/intake.py [N] [--repeats R] [--json FILE]     (default N = 10,000, R = 5)

Per round, interleaved (so that a machine whose load changes moves every line alike):

1. baseline: read the .jsonl, pydantic validation, one SQLAlchemy bulk INSERT of the
   application rows; no Prefect, no eligibility, no history.
2. odd17 services without Prefect (what `odd17 submit` does, in one process: the flows'
   own work).
3. odd17 end to end: the `intake` then `eligibility` Prefect flows, called in process as odd17
   calls them (``flows.common.local_runs``: no flow-run heartbeats), on Prefect's ephemeral
   server (started and warmed up before the clock starts); the `eligibility` flow only when
   the `intake` flow reports applications left pending (its ``pending``), as the services
   look for them.
4. one `intake` flow run on 10 documents, as odd17 calls it and with Prefect's defaults
   (heartbeats on: Prefect 3.8 joins a heartbeat thread that sleeps in 1 s steps), against
   the same services on the same 10 documents without Prefect.

5. `odd17 submit FILE --json` as a process of its own (stdout to /dev/null; past one batch
   with its worker process, odd17.services.intake_worker): its *marginal* time (the run on N
   documents less the run on 10, i.e. without the fixed start-up) against the baseline, and
   its peak memory (maximum resident set size) and its worker's; with ``--large M`` (default
   100,000; 0 to skip) once more on M documents, for the per-document cost and the memory at
   10^5; with ``--pg URL`` (an admin URL: scratch databases are created, then dropped) the
   baseline and the submit again on PostgreSQL.

Each run uses a fresh database initialised beforehand (not timed); each figure is the median
over the rounds.

Goals on SQLite, 2 cores: end to end >= 3,000 applications/s and <= 2.5 x the baseline's time;
the flows within 1.15 x the services' time; a flow run on 10 documents under 0.3 s; `odd17
submit` marginal >= 5,000 documents/s and <= 1.8 x the baseline (PostgreSQL too), the same
per-document cost within 1.1 x at 10^5 as at 10^4, and under 250 MB at 10^5."""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

WORK = Path(tempfile.mkdtemp(prefix="odd17-bench-"))
os.environ.setdefault("PREFECT_HOME", str(WORK / "prefect"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from figures import (  # noqa: E402
    Figure,
    json_option,
    median,
    rate_figure,
    time_figure,
    write_json,
)
from sqlalchemy import create_engine, insert, make_url, text  # noqa: E402
from stdnum import luhn  # noqa: E402

from flows.common import local_runs  # noqa: E402
from models import Application, Organisation  # noqa: E402
from odd17.db import dispose_engines, make_engine, unit_of_work  # noqa: E402
from odd17.runtime import utcnow  # noqa: E402
from odd17.services import intake  # noqa: E402
from odd17.services.batching import gc_paused  # noqa: E402
from odd17.services.pipeline import submit_and_evaluate  # noqa: E402
from odd17.services.setup import init_database  # noqa: E402
from odd17.settings import get_fund_config, get_settings, reset_caches  # noqa: E402
from odd17.uow import Context, Runner  # noqa: E402
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


PG_ADMIN: list[str] = []  # the --pg admin URL, when given
SCRATCH: list[str] = []  # PostgreSQL databases to drop at the end


def fresh_database(name: str, pg: bool = False) -> str:
    if pg:
        admin = make_url(PG_ADMIN[0]).set(drivername="postgresql+psycopg")
        db = f"odd17_bench_intake_{uuid.uuid4().hex[:8]}"
        with create_engine(admin, isolation_level="AUTOCOMMIT").connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{db}"'))
        SCRATCH.append(db)
        url = admin.set(database=db).render_as_string(hide_password=False)
    else:
        url = f"sqlite:///{WORK / name}.db"
    engine = make_engine(url)
    init_database(engine, get_fund_config(), utcnow())
    engine.dispose()
    os.environ["ODD17_DATABASE_URL"] = url
    reset_caches()
    dispose_engines()
    return url


def drop_scratch() -> None:
    if not SCRATCH:
        return
    dispose_engines()
    admin = make_url(PG_ADMIN[0]).set(drivername="postgresql+psycopg")
    with create_engine(admin, isolation_level="AUTOCOMMIT").connect() as conn:
        for db in SCRATCH:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))


# `odd17 submit` run by a Python that, on exit, writes the process's own peak RSS (VmHWM,
# reset by exec): the rusage of a child (wait4) would count the pages it shared, once forked,
# with this benchmark's process (gigabytes after the baseline on 10^5 documents). It writes
# its worker's too (the largest of its children, waited for by then: RUSAGE_CHILDREN), which
# counts the pages the worker shares with it since the fork: an upper bound.
_PEAK = ("import atexit, re, resource, sys\n"
         "def peak():\n"
         "    status = open('/proc/self/status').read()\n"
         "    sys.stderr.write('VmHWM %s\\n' % re.search(r'VmHWM:\\s+(\\d+)', status).group(1))\n"
         "    worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
         "    sys.stderr.write('Worker %s\\n' % worker)\n"
         "atexit.register(peak)\n"
         "from odd17.cli import main\n"
         "sys.argv = ['odd17', *sys.argv[1:]]\n"
         "main()\n")


def submit_process(path: Path, pg: bool = False,
                   env: dict[str, str] | None = None) -> tuple[float, float, float]:
    """`odd17 submit FILE --json` in a process of its own: (seconds, peak RSS in MB, its
    worker's peak RSS in MB, 0 without a worker)."""
    env = {**os.environ, **(env or {}),
           "ODD17_DATABASE_URL": fresh_database(f"cli-{time.monotonic_ns()}", pg)}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _PEAK, "submit", str(path), "--json"],
                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, cwd=WORK)  # not the checkout: sys.path[0] is the cwd
    elapsed = time.perf_counter() - start
    assert proc.returncode in (0, 1), (proc.returncode, proc.stderr[-2000:])
    return (elapsed, int(proc.stderr.rsplit("VmHWM ", 1)[1].split()[0]) / 1024,
            int(proc.stderr.rsplit("Worker ", 1)[1].split()[0]) / 1024)


def baseline(path: Path, pg: bool = False) -> float:
    engine = make_engine(fresh_database(f"baseline-{time.monotonic_ns()}", pg))
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
    runner = Runner(get_engine(), Context.from_settings("bench"))
    start = time.perf_counter()
    counts = _count(o.status for o in submit_and_evaluate(
        runner, intake.iter_documents([path]), language="fr",
        batch_size=get_settings().batch_size))
    elapsed = time.perf_counter() - start
    return elapsed, counts


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
    stored = intake_flow(paths=[str(path)])  # judges in its pass since 2026-11-23
    # the eligibility flow, as odd17's callers start it: for what an older run left pending
    summary = eligibility_flow() if stored["pending"] else {"eligible": 0, "ineligible": 0}
    elapsed = time.perf_counter() - start
    return elapsed, {verdict: stored[verdict] + summary[verdict]
                     for verdict in ("eligible", "ineligible")}


def one_flow_run(path: Path) -> float:
    """One `intake` flow run (reading and storing the documents of ``path``)."""
    from flows.intake import intake_flow

    fresh_database(f"run-{time.monotonic_ns()}")
    start = time.perf_counter()
    summary = intake_flow(paths=[str(path)])
    elapsed = time.perf_counter() - start
    assert summary["created"] > 0, summary
    return elapsed


def same_services(path: Path) -> float:
    """What the `intake` flow's tasks do, without Prefect: read, then store and judge."""
    from odd17.db import get_engine

    fresh_database(f"bare-{time.monotonic_ns()}")
    runner = Runner(get_engine(), Context.from_settings("bench"))
    start = time.perf_counter()
    outcomes = intake.submit_documents(runner, intake.read_sources([str(path)], "fr"),
                                       policy=runner.context.config.policy(), language="fr")
    elapsed = time.perf_counter() - start
    assert any(o.reference for o in outcomes)
    return elapsed


def _count(statuses) -> dict[str, int]:  # type: ignore[no-untyped-def]
    counts: dict[str, int] = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    return counts


def submit_figures(n: int, m: dict[str, float], large: dict[str, float],
                   big: int) -> list[Figure]:
    """`odd17 submit`: marginal rate (the run on n less the run on 10), memory, 10^5, PG."""
    marginal = m["cli"] - m["cli_tiny"]
    count = n - 10
    figures = [
        rate_figure("intake.submit_marginal", f"odd17 submit --json, {n:,} documents, marginal",
                    count, marginal, m["base"] * count / n, "documents/s",
                    "validate + 1 bulk insert, no Prefect", ">= 5,000/s and ratio <= 1.8",
                    count / marginal >= 5000 and marginal / (m["base"] * count / n) <= 1.8),
        Figure("intake.submit_memory", f"odd17 submit, {n:,} documents, peak RSS",
               round(m["mem"], 1), "MB", None, "", None, "", None),
        Figure("intake.submit_worker_memory", f"its worker process, {n:,} documents, peak "
               "RSS (shared pages included)", round(m["worker_mem"], 1), "MB", None, "", None,
               "", None),
    ]
    if large:
        marginal_big = large["cli"] - m["cli_tiny"]
        per_doc, per_doc_big = marginal / count, marginal_big / (big - 10)
        figures += [
            rate_figure("intake.submit_marginal_large", f"odd17 submit --json, {big:,} "
                        "documents, marginal", big - 10, marginal_big,
                        large["base"] * (big - 10) / big, "documents/s",
                        "validate + 1 bulk insert, no Prefect", "", None),
            Figure("intake.submit_per_document_large", f"per-document cost, {big:,} vs {n:,}",
                   round(per_doc_big * 1e6, 1), "µs/document", round(per_doc * 1e6, 1),
                   f"the same at {n:,}", round(per_doc_big / per_doc, 3), "ratio <= 1.1",
                   0 < per_doc_big / per_doc <= 1.1),
            Figure("intake.submit_memory_large", f"odd17 submit, {big:,} documents, peak RSS",
                   round(large["mem"], 1), "MB", round(m["mem"], 1), f"the same at {n:,}",
                   round(large["mem"] / m["mem"], 3), "< 250 MB", large["mem"] < 250),
            Figure("intake.submit_worker_memory_large", f"its worker process, {big:,} "
                   "documents, peak RSS (shared pages included)", round(large["worker_mem"], 1),
                   "MB", round(m["worker_mem"], 1), f"the same at {n:,}",
                   round(large["worker_mem"] / max(m["worker_mem"], 1), 3), "< 250 MB",
                   large["worker_mem"] < 250),
        ]
    if "pg_cli" in m:
        pg_marginal, pg_base = m["pg_cli"] - m["pg_tiny"], m["pg_base"] * count / n
        figures.append(rate_figure(
            "intake.submit_marginal_pg", f"odd17 submit --json, {n:,} documents, PostgreSQL",
            count, pg_marginal, pg_base, "documents/s", "the same baseline on PostgreSQL",
            "ratio <= 1.8", 0 < pg_marginal / pg_base <= 1.8))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=10_000, help="applications")
    parser.add_argument("--repeats", type=int, default=int(os.environ.get("BENCH_REPEATS", 5)),
                        help="interleaved rounds (the figures are their medians)")
    parser.add_argument("--large", type=int, default=100_000, metavar="M",
                        help="also `odd17 submit` on M documents, once (0: skip)")
    parser.add_argument("--pg", default=os.environ.get("ODD17_BENCH_PG_URL"), metavar="URL",
                        help="PostgreSQL admin URL: baseline and submit there too")
    json_option(parser)
    args = parser.parse_args()
    n, repeats = args.n, args.repeats
    PG_ADMIN[:] = [args.pg] if args.pg else []
    path = WORK / "applications.jsonl"
    generate(n, path)
    tiny = WORK / "tiny.jsonl"
    generate(10, tiny)
    batch = get_settings().batch_size
    print(f"odd17 intake benchmark: {n} applications, SQLite, {os.cpu_count()} CPU(s), "
          f"batches of {batch}, median of {repeats} interleaved rounds")
    startup = start_prefect()
    t: dict[str, list[float]] = {k: [] for k in ("base", "svc", "e2e", "run", "run_hb", "bare",
                                                 "cli", "cli_tiny", "mem", "worker_mem",
                                                 "pg_base", "pg_cli", "pg_tiny")}
    svc_counts, e2e_counts = [], []
    for _ in range(repeats):
        t["base"].append(baseline(path))
        seconds, counts = services_only(path)
        t["svc"].append(seconds)
        svc_counts.append(counts)
        with local_runs():
            seconds, counts = with_prefect(path)
        t["e2e"].append(seconds)
        e2e_counts.append(counts)
        for _ in range(3):  # small and quick: three of each per round
            t["bare"].append(same_services(tiny))
            with local_runs():
                t["run"].append(one_flow_run(tiny))
            t["run_hb"].append(one_flow_run(tiny))  # Prefect's defaults: heartbeats on
        seconds, peak, worker = submit_process(path)
        t["cli"].append(seconds)
        t["mem"].append(peak)
        t["worker_mem"].append(worker)
        t["cli_tiny"].append(submit_process(tiny)[0])
        if PG_ADMIN:
            t["pg_base"].append(baseline(path, pg=True))
            t["pg_cli"].append(submit_process(path, pg=True)[0])
            t["pg_tiny"].append(submit_process(tiny, pg=True)[0])
    large: dict[str, float] = {}
    if args.large:
        big = WORK / "large.jsonl"
        generate(args.large, big)
        large["base"] = baseline(big)
        large["cli"], large["mem"], large["worker_mem"] = submit_process(big)
        big.unlink()
    drop_scratch()
    m = {k: median(v) for k, v in t.items() if v}
    assert all(c == e2e_counts[0] for c in e2e_counts), "the flows must give the same verdicts"
    assert svc_counts[0] == e2e_counts[0], (svc_counts[0], e2e_counts[0])
    rate_e2e = n / m["e2e"]
    ratio_e2e = m["e2e"] / m["base"]
    figures: list[Figure] = [
        rate_figure("intake.end_to_end", f"intake + eligibility flows, {n:,} applications",
                    n, m["e2e"], m["base"], "applications/s",
                    "validate + 1 bulk insert, no Prefect", ">= 3,000/s and ratio <= 2.5",
                    rate_e2e >= 3000 and ratio_e2e <= 2.5),
        rate_figure("intake.services", f"services, no Prefect, {n:,} applications", n,
                    m["svc"], m["base"], "applications/s",
                    "validate + 1 bulk insert, no Prefect", "", None),
        time_figure("intake.flows_vs_services", f"intake + eligibility flows, {n:,} "
                    "applications", m["e2e"], m["svc"], "the same services, no Prefect",
                    "ratio <= 1.15", m["e2e"] / m["svc"] <= 1.15),
        time_figure("flow_run.10_documents", "one intake flow run, 10 documents", m["run"],
                    m["bare"], "the same services, no Prefect", "< 0.3 s", m["run"] < 0.3),
        time_figure("flow_run.10_documents_prefect_defaults",
                    "the same, Prefect's default heartbeats", m["run_hb"], m["bare"],
                    "the same services, no Prefect", "", None),
        *submit_figures(n, m, large, args.large),
    ]
    for f in figures:
        base = f"{f.baseline:>10,.3f}" if f.baseline is not None else " " * 10
        print(f"  {f.label:<52} {f.value:>10,.3f} {f.unit:<15} baseline {base}  "
              + (f"ratio {f.ratio:6.2f}" if f.ratio is not None else " " * 12)
              + f"  goal {f.goal or '-'}"
              + ("" if f.met is None else ("  met" if f.met else "  NOT met")))
    print(f"  Prefect ephemeral server start (not counted): {startup:.1f} s")
    print(f"  outcomes: {dict(sorted(e2e_counts[0].items()))}")
    write_json(args.json, "intake", figures, applications=n, rounds=repeats, batch_size=batch,
               prefect_startup_seconds=round(startup, 2), large=args.large,
               large_seconds={k: round(v, 3) for k, v in large.items()},
               outcomes=dict(sorted(e2e_counts[0].items())),
               seconds_per_round={k: [round(x, 4) for x in v] for k, v in t.items()})


if __name__ == "__main__":
    main()
