"""Ledger benchmarks.

    python bench/ledger.py                      # report timing on SQLite
    python bench/ledger.py postgresql://user@127.0.0.1:5432/postgres   # + concurrent writers

1. The finance report (``odd17 finance``'s service) on a ledger of ~1,000 entries and on the
   same ledger grown to ~1,000,000 entries (999,000 small top-ups bulk-inserted with their
   running balances, over 1,000 days). Target: the second within 1.5x the first, because the
   report reads running balances and never sums the ledger. ``--check`` (which does replay the
   whole ledger, by design) is timed too, for information.
2. With a PostgreSQL URL (an admin connection; a scratch database is created and dropped):
   approvals per second with 8 concurrent writers against one envelope, and with 1 writer as
   the baseline of the same run."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from sqlalchemy import create_engine, insert, make_url, select, text, update
from stdnum import luhn

from models import Application, Balance, LedgerDay, LedgerEntry, Status
from models.ledger import TOTAL, EntryKind
from odd17.db import make_engine, unit_of_work
from odd17.services import eligibility, intake, ledger
from odd17.services.setup import init_database
from odd17.settings import load_fund_config
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
    refs = [o.reference or "" for o in intake.submit_documents(engine, raws, now=now,
                                                                 actor="bench")]
    eligibility.evaluate_ids(engine, eligibility.candidate_ids(engine, references=refs),
                             EligibilityPolicy(), now=now, actor="bench")
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
    per_day = extra // days
    chunk: list[dict] = []
    day_rows: list[dict] = []
    cent = Decimal("0.01")
    for i in range(extra):
        env += cent
        day = last_day + dt.timedelta(days=1 + i // per_day)
        at = dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)
        chunk.append({"fund_id": fund, "kind": EntryKind.topup, "amount": cent,
                      "idempotency_key": f"grow-{i}", "at": at, "actor": "bench",
                      "note": None, "grant_id": None, "tranche_id": None,
                      "envelope_after": env, "committed_after": com, "disbursed_after": dis})
        if (i + 1) % per_day == 0 or i == extra - 1:
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


def time_report(engine, runs: int = 30) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        with unit_of_work(engine) as s:
            ledger.finance_report(s, alert_threshold=T)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_check(engine) -> tuple[float, list[str]]:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    with unit_of_work(engine) as s:
        breaches = ledger.check(s)
    return time.perf_counter() - start, breaches


def report_benchmark() -> None:
    work = Path(tempfile.mkdtemp(prefix="odd17-ledger-bench-"))
    engine = make_engine(f"sqlite:///{work / 'ledger.db'}")
    init_database(engine, CONFIG, START - dt.timedelta(days=60))
    small = small_ledger(engine)
    t_small = time_report(engine)
    c_small, breaches = time_check(engine)
    assert breaches == [], breaches
    big = grow(engine, 1_000_000 - small)
    t_big = time_report(engine)
    c_big, breaches = time_check(engine)
    assert breaches == [], breaches[:3]
    print("finance report (SQLite), median of 30 runs:")
    print(f"  {small:>9,} ledger entries  {t_small * 1000:7.2f} ms   (--check {c_small:6.2f} s)")
    print(f"  {big:>9,} ledger entries  {t_big * 1000:7.2f} ms   (--check {c_big:6.2f} s)")
    print(f"  ratio {t_big / t_small:.2f} (target <= 1.5)")


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


def writers_benchmark(admin_url: str, writers: int = 8, per_writer: int = 150) -> None:
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
            assert ledger.check(s) == []
        engine.dispose()
        print("approvals on PostgreSQL (one transaction each: lock, conditional UPDATE, grant, "
              "3 tranches, entry, balances):")
        print(f"  1 writer   {single:8.0f} commits/s  (baseline)")
        print(f"  {writers} writers  {concurrent:8.0f} commits/s  ratio {concurrent / single:.2f}"
              f"  (every approval locks the fund's balance row: writers queue by design)")
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    report_benchmark()
    pg = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("ODD17_BENCH_PG_URL")
    if pg:
        writers_benchmark(pg)
    else:
        print("(no PostgreSQL URL given: concurrent writers not measured)")
