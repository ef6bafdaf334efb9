"""Ledger benchmarks.

    python bench/ledger.py [--entries N] [--check] [--json FILE] [POSTGRESQL_ADMIN_URL]

1. The finance report (``odd17 finance``'s service) on two ledgers with the same history of
   days and very different numbers of entries. Both start from the same ledger written through
   the real services (~1,000 entries: 400 approvals and their payments, over 801 days), copied;
   then each gets 1,000 more days of top-ups with their running balances: 1 a day for the
   small ledger (~2,000 entries, 1,801 days), N/1,000 a day for the large one (N = 1,000,000
   entries in all, the same 1,801 days). The report reads running balances and one row per day
   of activity, never the entries: target, the large ledger's report within 1.5x the small
   one's. Timed alternately, median of 30 each. With ``--check``, ``odd17 finance --check``
   (which replays the whole ledger, by design, so linear) is timed on both, for information.
2. With a PostgreSQL URL (an admin connection; a scratch database is created and dropped;
   or ODD17_BENCH_PG_URL): approvals per second with 8 concurrent writers against one
   envelope, and with 1 writer as the baseline of the same run."""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import os
import sqlite3
import tempfile
import time
import uuid
from contextlib import closing
from decimal import Decimal
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from figures import Figure, json_option, median, rate_figure, time_figure, write_json
from sqlalchemy import create_engine, insert, make_url, select, text, update
from stdnum import luhn

from models import Application, Balance, LedgerDay, LedgerEntry, Status
from models.ledger import TOTAL, EntryKind
from odd17.db import make_engine, unit_of_work
from odd17.services import audit, eligibility, finance, intake, ledger
from odd17.services.setup import init_database
from odd17.settings import load_fund_config
from odd17.uow import Context, Runner
from rules.eligibility import EligibilityPolicy
from rules.tranches import DEFAULT_PLAN

T = Decimal("0.10")
START = dt.datetime(2027, 1, 4, 9, 0, tzinfo=dt.UTC)
CONFIG = load_fund_config(None)


def siret(n: int) -> str:
    siren = f"{n % 10**8:08d}"
    siren += luhn.calc_check_digit(siren)
    base = siren + "0001"
    return base + luhn.calc_check_digit(base)


def committee_applications(engine, count: int, requested: str, offset: int = 0) -> list[str]:  # type: ignore[no-untyped-def]
    docs = []
    for i in range(offset, offset + count):
        docs.append({
            "title": f"Alliance de bench n°{i}", "summary": "Projet d'alliance.",
            "lead": {"name": f"Association {i}", "kind": "association", "siret": siret(i),
                     "email": f"a{i}@example.org"},
            "partners": [{"name": "Mairie", "kind": "collectivite"}],
            "objectives": [["dialogue", "ingenierie", "experimentation"][i % 3]],
            "innovations": ["solutions"],
            "territory": {"region": ["Bretagne", "Occitanie", "La Réunion", "Normandie"][i % 4],
                          "department": ["29", "31", "974", "14"][i % 4]},
            "requested_amount": requested, "total_budget": "500000.00",
            "start_date": "2027-03-01", "duration_months": 24,
            "documents": ["statuts", "budget_previsionnel", "rib"],
        })
    raws = [intake.RawDocument(f"b{i}", d) for i, d in enumerate(docs)]
    now = START - dt.timedelta(days=30)
    runner = Runner(engine, Context(actor="bench", config=load_fund_config(None),
                                    clock=lambda: now))
    refs = [o.reference or "" for o in intake.submit_documents(runner, raws)]
    with runner.uow() as uow:
        eligibility.evaluate_batch(uow, eligibility.candidate_ids(uow, references=refs),
                                   EligibilityPolicy())
    with unit_of_work(engine) as s:
        for app in s.scalars(select(Application).where(Application.reference.in_(refs))):
            app.transition_to(Status.in_review, actor="bench", at=now)
            app.transition_to(Status.committee, actor="bench", at=now)
    return refs


def small_ledger(engine) -> int:  # type: ignore[no-untyped-def]
    """~1,000 entries through the real services: 400 approvals and their payments."""
    refs = committee_applications(engine, 400, "5000.00")
    for i, ref in enumerate(refs):
        with unit_of_work(engine) as s:
            ledger.approve(s, ref, Decimal("5000.00"), plan=DEFAULT_PLAN, actor="bench",
                           now=START + dt.timedelta(days=i), alert_threshold=T)
    paid = 0
    for tranche in (1, 2):
        for i, ref in enumerate(refs):
            if paid >= 599:
                break
            with unit_of_work(engine) as s:
                ledger.pay(s, ref, tranche, f"VIR-{tranche}-{i}",
                           paid_on=(START + dt.timedelta(days=400 + i)).date(),
                           actor="bench", now=START + dt.timedelta(days=400 + i),
                           alert_threshold=T)
            paid += 1
    with unit_of_work(engine) as s:
        return s.query(LedgerEntry).count()


def grow(engine, extra: int, days: int = 1000) -> int:  # type: ignore[no-untyped-def]
    """Append ``extra`` top-ups of 0.01 € with their running balances, as the services would
    have written them, and bring the balances and the daily history up to date."""
    with unit_of_work(engine) as s:
        fund = ledger.fund_id(s)
        total = s.scalars(select(Balance).where(Balance.dimension == TOTAL)).one()
        env, com, dis = total.envelope, total.committed, total.disbursed
        last_day = s.scalar(select(LedgerDay.day).order_by(LedgerDay.day.desc()).limit(1))
    assert extra >= days, "at least one entry a day"
    chunk: list[dict] = []
    day_rows: list[dict] = []
    cent = Decimal("0.01")
    for i in range(extra):
        env += cent
        day = last_day + dt.timedelta(days=1 + i * days // extra)  # exactly `days` days
        at = dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)
        chunk.append({"fund_id": fund, "kind": EntryKind.topup, "amount": cent,
                      "idempotency_key": f"grow-{i}", "at": at, "actor": "bench",
                      "note": None, "grant_id": None, "tranche_id": None,
                      "envelope_after": env, "committed_after": com, "disbursed_after": dis})
        if i == extra - 1 or (i + 1) * days // extra != i * days // extra:  # day's last
            day_rows.append({"fund_id": fund, "day": day, "envelope": env, "committed": com,
                             "disbursed": dis})
        if len(chunk) == 50_000:
            with unit_of_work(engine) as s:
                s.execute(insert(LedgerEntry.__table__), chunk)
            chunk = []
    with unit_of_work(engine) as s:
        if chunk:
            s.execute(insert(LedgerEntry.__table__), chunk)
        s.execute(insert(LedgerDay.__table__), day_rows)
        s.execute(update(Balance.__table__).where(Balance.__table__.c.dimension == TOTAL)
                  .values(envelope=ledger._cents(env)))
        return s.query(LedgerEntry).count()


def time_reports(engines: list, runs: int = 30) -> list[float]:  # type: ignore[type-arg]
    """Median report time of each engine, the engines timed in turn (interleaved)."""
    times: list[list[float]] = [[] for _ in engines]
    for _ in range(runs):
        for k, engine in enumerate(engines):
            start = time.perf_counter()
            with unit_of_work(engine) as s:
                finance.finance_report(s, alert_threshold=T)
            times[k].append(time.perf_counter() - start)
    return [median(t) for t in times]


def time_check(engine) -> tuple[float, list[str]]:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    with unit_of_work(engine) as s:
        breaches = audit.check(s)
    return time.perf_counter() - start, breaches


def shape(engine) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """(entries, days of history) of a ledger."""
    with unit_of_work(engine) as s:
        return s.query(LedgerEntry).count(), s.query(LedgerDay).count()


def report_benchmark(entries: int, check: bool) -> list[Figure]:
    work = Path(tempfile.mkdtemp(prefix="odd17-ledger-bench-"))
    engine = make_engine(f"sqlite:///{work / 'small.db'}")
    init_database(engine, CONFIG, START - dt.timedelta(days=60))
    base = small_ledger(engine)
    with closing(sqlite3.connect(work / "small.db", isolation_level=None)) as conn:
        conn.execute("VACUUM INTO ?", (str(work / "large.db"),))  # the same ledger for both
    large = make_engine(f"sqlite:///{work / 'large.db'}")
    grow(engine, 1000)
    grow(large, entries - base)
    (n_small, d_small), (n_large, d_large) = shape(engine), shape(large)
    assert d_small == d_large, (d_small, d_large)  # like with like: the same history
    t_small, t_large = time_reports([engine, large])
    print(f"finance report (SQLite), median of 30 runs each, alternately; "
          f"both ledgers span {d_small:,} days:")
    print(f"  {n_small:>9,} ledger entries  {t_small * 1000:7.2f} ms")
    print(f"  {n_large:>9,} ledger entries  {t_large * 1000:7.2f} ms")
    print(f"  ratio {t_large / t_small:.2f} (target <= 1.5) for {n_large / n_small:,.0f}x "
          "the entries")
    figures = [time_figure(
        "ledger.report", f"finance report, {n_large:,} entries over {d_large:,} days",
        t_large, t_small, f"{n_small:,} entries over the same {d_small:,} days", "ratio <= 1.5",
        t_large / t_small <= 1.5, unit="ms")]
    if check:
        c_small, breaches = time_check(engine)
        assert breaches == [], breaches
        c_large, breaches = time_check(large)
        assert breaches == [], breaches[:3]
        print(f"  --check: {c_small:.2f} s and {c_large:.2f} s (replays every entry)")
        figures.append(time_figure(
            "ledger.check", f"finance --check, {n_large:,} entries", c_large, c_small,
            f"{n_small:,} entries", "", None))
    engine.dispose()
    large.dispose()
    return figures


def _approve_all(db_url: str, batch: list[str]) -> None:
    engine = make_engine(db_url)
    for ref in batch:
        with unit_of_work(engine) as s:
            ledger.approve(s, ref, Decimal("5000.00"), plan=DEFAULT_PLAN, actor="bench",
                           now=dt.datetime.now(dt.UTC), alert_threshold=T)
    engine.dispose()


def _run_writers(db_url: str, batches: list[list[str]]) -> float:
    """Seconds for one process per batch to approve its applications (processes, not
    threads: threads would share one GIL and measure Python rather than the database)."""
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_approve_all, args=(db_url, b)) for b in batches]
    start = time.perf_counter()
    for p in processes:
        p.start()
    for p in processes:
        p.join()
    elapsed = time.perf_counter() - start
    if any(p.exitcode != 0 for p in processes):
        raise SystemExit("a writer process failed")
    return elapsed


def writers_benchmark(admin_url: str, writers: int = 8, per_writer: int = 150) -> list[Figure]:
    url = make_url(admin_url).set(drivername="postgresql+psycopg")
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"odd17_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        engine = make_engine(url.set(database=name).render_as_string(hide_password=False))
        init_database(engine, CONFIG, START - dt.timedelta(days=60))
        refs = committee_applications(engine, per_writer * (writers + 1), "5000.00")
        with unit_of_work(engine) as s:  # room for every approval below
            ledger.topup(s, Decimal("10000000"), reason="bench", key="bench", actor="bench",
                         now=START, alert_threshold=T)

        db_url = url.set(database=name).render_as_string(hide_password=False)
        engine.dispose()  # each writer process opens its own connections
        single = per_writer / _run_writers(db_url, [refs[:per_writer]])
        rest = refs[per_writer:]
        concurrent = len(rest) / _run_writers(db_url, [rest[i::writers] for i in range(writers)])
        engine = make_engine(db_url)
        with unit_of_work(engine) as s:
            assert audit.check(s) == []
        engine.dispose()
        print("approvals on PostgreSQL (one transaction each: lock, conditional UPDATE, grant, "
              "3 tranches, entry, balances):")
        print(f"  1 writer   {single:8.0f} commits/s  (baseline)")
        print(f"  {writers} writers  {concurrent:8.0f} commits/s  ratio {concurrent / single:.2f}"
              f"  (every approval locks the fund's balance row: writers queue by design)")
        return [rate_figure(
            "ledger.approvals", f"approvals on PostgreSQL, {writers} writer processes",
            len(rest), len(rest) / concurrent, len(rest) / single, "approvals/s", "1 writer",
            "", None)]
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description="odd17 ledger benchmarks")
    parser.add_argument("pg_url", nargs="?", default=os.environ.get("ODD17_BENCH_PG_URL"),
                        help="PostgreSQL admin URL: also measure concurrent approvals")
    parser.add_argument("--entries", type=int, default=1_000_000,
                        help="entries of the large ledger (default 1,000,000)")
    parser.add_argument("--check", action="store_true", help="also time finance --check")
    json_option(parser)
    args = parser.parse_args()
    figures = report_benchmark(args.entries, args.check)
    if args.pg_url:
        figures += writers_benchmark(args.pg_url)
    else:
        print("(no PostgreSQL URL given: concurrent writers not measured)")
    write_json(args.json, "ledger", figures, entries=args.entries,
               postgresql=bool(args.pg_url))


if __name__ == "__main__":
    main()
