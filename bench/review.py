"""Reviewer assignment benchmark (issue 12).

    python bench/review.py [--applications N] [--reviewers R] [--rounds K] [--json FILE]

Builds once a SQLite base with N eligible applications (through the intake and eligibility
services) and R reviewers, some of whom declared interests in applicants (so that conflicts
and recusals are found and recorded), then times, on a fresh copy of that base each round:

- the figure: ``odd17 review assign --all`` as a user runs it (a process of its own), per
  application: conflicts, choice, the review rows, recusals, e-mails in the outbox, the move to
  ``in_review`` and its history row;
- the baseline, the same rounds: one plain bulk INSERT of the same number of review rows
  (``reviewers_per_application`` per application) in one transaction: the floor of any
  assignment that writes its rows.

Rounds are interleaved (baseline, figure, ...); each value is the median. Goal: ≤ 0.5 ms per
application."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORK = Path(tempfile.mkdtemp(prefix="odd17-bench-review-"))
os.environ.setdefault("PREFECT_HOME", str(WORK / "prefect"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from figures import Figure, json_option, median, time_figure, write_json  # noqa: E402
from sqlalchemy import func, insert, select  # noqa: E402
from stdnum import luhn  # noqa: E402

from models import Application, Review, Reviewer, Status  # noqa: E402
from odd17.db import dispose_engines, make_engine, unit_of_work  # noqa: E402
from odd17.services import intake, pipeline  # noqa: E402
from odd17.services.setup import init_database  # noqa: E402
from odd17.settings import load_fund_config  # noqa: E402
from odd17.uow import Context, Runner  # noqa: E402
from rules.eligibility import EligibilityPolicy  # noqa: E402

NOW = dt.datetime(2027, 1, 4, 9, 0, tzinfo=dt.UTC)
CONFIG = load_fund_config(None)
GOAL_MS = 0.5


def siret(n: int) -> str:
    siren = f"{n % 10**8:08d}"
    siren += luhn.calc_check_digit(siren)
    base = siren + "0001"
    return base + luhn.calc_check_digit(base)


def document(i: int) -> dict:  # type: ignore[type-arg]
    return {
        "title": f"Alliance de bench n°{i}", "summary": "Projet d'alliance.",
        "lead": {"name": f"Association {i}", "kind": "association", "siret": siret(i),
                 "email": f"a{i}@example.org"},
        "partners": [{"name": f"Entreprise {i}", "kind": "entreprise",
                      "siret": siret(10**6 + i)},
                     {"name": "Mairie", "kind": "collectivite"}],
        "objectives": [["dialogue", "ingenierie", "experimentation"][i % 3]],
        "innovations": ["solutions"],
        "territory": {"region": ["Bretagne", "Occitanie", "La Réunion", "Normandie"][i % 4],
                      "department": ["29", "31", "974", "14"][i % 4]},
        "requested_amount": "20000.00", "total_budget": "500000.00",
        "start_date": "2027-03-01", "duration_months": 24,
        "documents": ["statuts", "budget_previsionnel", "rib"],
    }


def build(path: Path, applications: int, reviewers: int) -> None:
    """The starting base: ``applications`` eligible applications, ``reviewers`` reviewers;
    every fifth reviewer works for an applicant's partner and declared interests in ten other
    applicants."""
    engine = make_engine(f"sqlite:///{path}")
    init_database(engine, CONFIG, NOW - dt.timedelta(days=60))
    now = NOW - dt.timedelta(days=30)
    for start in range(0, applications, 2000):
        raws = [intake.RawDocument(f"b{i}", document(i))
                for i in range(start, min(start + 2000, applications))]
        run = Runner(engine, Context(actor="bench", config=CONFIG, clock=lambda: now))
        refs = [o.reference or "" for o in intake.submit_documents(run, raws)]
        pipeline.evaluate_references(run, refs, EligibilityPolicy(), batch_size=2000)
    rows = []
    for r in range(reviewers):
        conflicted = r % 5 == 0
        rows.append({
            "email": f"r{r:03d}@eval.example.org", "name": f"Évaluateur {r}",
            "siren": siret(10**6 + r * 7)[:9] if conflicted else None,
            "interests": [siret(r * 11 + k)[:9] for k in range(10)] if conflicted else [],
            "reviews": True, "committee": False, "active": True, "created_at": now})
    with unit_of_work(engine) as s:
        s.execute(insert(Reviewer), rows)
        eligible = s.scalar(select(func.count()).select_from(Application)
                            .where(Application.status == Status.eligible))
    assert eligible == applications, f"{eligible} eligible of {applications}"
    engine.dispose()


def assign_cli(path: Path) -> tuple[float, float]:
    """``odd17 review assign --all --json`` on ``path``: wall time and CPU time (user +
    system) of the process."""
    env = {**os.environ, "ODD17_DATABASE_URL": f"sqlite:///{path}"}
    odd17 = Path(sys.executable).with_name("odd17")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([str(odd17), "review", "assign", "--all", "--json"], env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"odd17 review assign failed: {proc.stderr[-2000:]}")
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def check(path: Path, applications: int) -> None:
    engine = make_engine(f"sqlite:///{path}")
    with unit_of_work(engine) as s:
        moved = s.scalar(select(func.count()).select_from(Application)
                         .where(Application.status == Status.in_review))
        reviews = s.scalar(select(func.count()).select_from(Review))
    engine.dispose()
    per = CONFIG.review.reviewers_per_application
    assert moved == applications and reviews == per * applications, (moved, reviews)


def plain_insert(path: Path) -> tuple[float, float]:
    """The baseline: the same number of review rows, one bulk INSERT, one transaction."""
    engine = make_engine(f"sqlite:///{path}")
    with unit_of_work(engine) as s:
        apps = list(s.scalars(select(Application.id).order_by(Application.id)))
        people = list(s.scalars(select(Reviewer.id).order_by(Reviewer.id)))
    per = CONFIG.review.reviewers_per_application
    rows = [{"application_id": a, "reviewer_id": people[(i * per + k) % len(people)],
             "assigned_at": NOW} for i, a in enumerate(apps) for k in range(per)]
    start, cpu = time.perf_counter(), time.process_time()
    with unit_of_work(engine) as s:
        s.execute(insert(Review), rows)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    engine.dispose()
    dispose_engines()
    return seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--applications", type=int, default=10_000)
    parser.add_argument("--reviewers", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    json_option(parser)
    args = parser.parse_args()
    template = WORK / "template.db"
    print(f"building {args.applications} eligible applications, {args.reviewers} reviewers…")
    build(template, args.applications, args.reviewers)
    figure_s, base_s, figure_cpu, base_cpu = [], [], [], []
    for round_ in range(args.rounds):
        copy = WORK / f"base-{round_}.db"
        shutil.copy(template, copy)
        wall, cpu = plain_insert(copy)
        base_s.append(wall)
        base_cpu.append(cpu)
        shutil.copy(template, copy)
        wall, cpu = assign_cli(copy)
        figure_s.append(wall)
        figure_cpu.append(cpu)
        check(copy, args.applications)
        print(f"round {round_ + 1}: assign {figure_s[-1]:.2f} s (CPU {figure_cpu[-1]:.2f} s), "
              f"plain insert {base_s[-1]:.3f} s (CPU {base_cpu[-1]:.3f} s)")
    n = args.applications
    per_app, base_per_app = median(figure_s) / n, median(base_s) / n
    baseline = (f"one bulk INSERT of the same {CONFIG.review.reviewers_per_application} "
                "review rows per application")
    figures: list[Figure] = [
        time_figure("review_assign_per_application",
                    f"odd17 review assign --all, {n:,} applications, per application",
                    per_app, base_per_app, baseline, f"≤ {GOAL_MS} ms per application",
                    per_app * 1000 <= GOAL_MS, unit="ms"),
        # CPU time moves less than wall time on a shared machine: for information
        time_figure("review_assign_cpu_per_application",
                    "the same, CPU time of the process (user + system), per application",
                    median(figure_cpu) / n, median(base_cpu) / n, baseline + " (CPU time)",
                    "", None, unit="ms")]
    for f in figures:
        verdict = ("information" if f.met is None
                   else f"goal {f.goal}: {'met' if f.met else 'NOT met'}")
        print(f"{f.label}: {f.value} {f.unit} (baseline {f.baseline} {f.unit}, "
              f"ratio {f.ratio}); {verdict}")
    write_json(args.json, "review", figures, applications=n, reviewers=args.reviewers,
               rounds=args.rounds)
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
