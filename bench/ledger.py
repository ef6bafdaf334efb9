"""Ledger benchmarks.

    python bench/ledger.py [--entries N] [--payments N] [--json FILE] [POSTGRESQL_ADMIN_URL]

1. The finance report (``odd17 finance``'s service) on two ledgers with the same history of
   days and very different numbers of entries. Both start from the same ledger written through
   the real services (~1,000 entries: 400 approvals and their payments, over 801 days), copied;
   then each gets 1,000 more days of top-ups with their running balances: 1 a day for the
   small ledger (~2,000 entries, 1,801 days), N/1,000 a day for the large one (N = 1,000,000
   entries in all, the same 1,801 days). The report reads running balances and one row per day
   of activity, never the entries: target, the large ledger's report within 1.5x the small
   one's. Timed alternately, median of 30 each.
2. ``odd17 finance --check`` (services/audit.py) on both ledgers: target <= 2 s on the large
   one; the small one is the baseline.
3. A bank statement of ``--payments`` lines (default 10,000) through the ``disbursement`` flow
   (SQLite, in process): payments per second, target >= 1,000/s; baseline, the same lines
   recorded one transaction each with ``ledger.pay`` (the path before batching) on a copy of
   the same database, for the first 1,000 lines.
4. With a PostgreSQL URL (an admin connection; a scratch database is created and dropped;
   or ODD17_BENCH_PG_URL): approvals per second with 1, 2, 4 and 8 writer processes against
   one envelope, and a plain psycopg baseline doing the same conditional UPDATE + INSERT with
   8 writers (on the one balance row; for reading, also on a row each: what the shared row's
   lock costs on this machine); each run timed from the moment every process is connected and
   has made one approval (or one plain transaction), to its end; BENCH_REPEATS (default 3)
   interleaved rounds, medians. Targets: 8 writers >= 1 writer, and >= 0.25x the plain baseline; for
   ``ledger.approve`` alone and for the product's path, recorded committee decisions applied
   (``committee.apply_recorded``) by 1 and by 8 writers."""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import multiprocessing
import os
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, closing
from decimal import Decimal
from multiprocessing.synchronize import Barrier
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from figures import Figure, json_option, median, rate_figure, time_figure, write_json
from sqlalchemy import create_engine, insert, make_url, select, text, update
from sqlalchemy.orm import Session
from stdnum import luhn

from models import Application, Balance, LedgerDay, LedgerEntry, Reviewer, Status
from models.ledger import TOTAL, EntryKind
from odd17.db import dispose_engines, make_engine, unit_of_work
from odd17.services import audit, committee, eligibility, finance, intake, ledger
from odd17.services.balances import cents, fund_id
from odd17.services.setup import init_database
from odd17.settings import load_fund_config, reset_caches
from odd17.uow import Context, Runner, UnitOfWork, open_uow
from rules.eligibility import EligibilityPolicy
from rules.tranches import DEFAULT_PLAN

T = Decimal("0.10")
MEMBERS = [f"membre{i}@fonds.example.org" for i in range(3)]
START = dt.datetime(2027, 1, 4, 9, 0, tzinfo=dt.UTC)
CONFIG = load_fund_config(None)


def bench_uow(engine, now: dt.datetime) -> AbstractContextManager[UnitOfWork]:  # type: ignore[no-untyped-def]
    """One unit of work as the benchmark's actor, at ``now``."""
    return open_uow(engine, Context(actor="bench", config=CONFIG, clock=lambda: now))


def uow_for(session: Session) -> UnitOfWork:
    """A unit of work around a session already open (the read models take one)."""
    return UnitOfWork(session, Context(actor="bench", config=CONFIG), dt.datetime.now(dt.UTC))


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
        with bench_uow(engine, START + dt.timedelta(days=i)) as uow:
            ledger.approve(uow, ref, Decimal("5000.00"), plan=DEFAULT_PLAN)
    paid = 0
    for tranche in (1, 2):
        for i, ref in enumerate(refs):
            if paid >= 599:
                break
            with bench_uow(engine, START + dt.timedelta(days=400 + i)) as uow:
                ledger.pay(uow, ref, tranche, f"VIR-{tranche}-{i}",
                           paid_on=(START + dt.timedelta(days=400 + i)).date())
            paid += 1
    with unit_of_work(engine) as s:
        return s.query(LedgerEntry).count()


def grow(engine, extra: int, days: int = 1000) -> int:  # type: ignore[no-untyped-def]
    """Append ``extra`` top-ups of 0.01 € with their running balances, as the services would
    have written them, and bring the balances and the daily history up to date."""
    with unit_of_work(engine) as s:
        fund = fund_id(s)
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
                  .values(envelope=cents(env)))
        return s.query(LedgerEntry).count()


def time_reports(engines: list, runs: int = 30) -> list[float]:  # type: ignore[type-arg]
    """Median report time of each engine, the engines timed in turn (interleaved)."""
    times: list[list[float]] = [[] for _ in engines]
    for _ in range(runs):
        for k, engine in enumerate(engines):
            start = time.perf_counter()
            with unit_of_work(engine) as s:
                finance.finance_report(uow_for(s))
            times[k].append(time.perf_counter() - start)
    return [median(t) for t in times]


def time_check(engine) -> tuple[float, list[str]]:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    with unit_of_work(engine) as s:
        breaches = audit.check(uow_for(s))
    return time.perf_counter() - start, breaches


def shape(engine) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """(entries, days of history) of a ledger."""
    with unit_of_work(engine) as s:
        return s.query(LedgerEntry).count(), s.query(LedgerDay).count()


def report_benchmark(entries: int) -> list[Figure]:
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
    c_small, breaches = time_check(engine)
    assert breaches == [], breaches
    c_large, breaches = time_check(large)
    assert breaches == [], breaches[:3]
    print(f"finance --check: {c_small:.2f} s ({n_small:,} entries) and {c_large:.2f} s "
          f"({n_large:,} entries; target <= 2 s)")
    figures.append(time_figure(
        "ledger.check", f"finance --check, {n_large:,} entries", c_large, c_small,
        f"{n_small:,} entries", "<= 2 s", c_large <= 2.0))
    engine.dispose()
    large.dispose()
    return figures


def _approve_all(db_url: str, warm: str, batch: list[str], ready: Barrier) -> None:
    """One writer: connect and approve ``warm`` (the process's first approval compiles its
    statements and opens its connection: start-up, not throughput), wait for the others at
    ``ready``, then approve ``batch``."""
    engine = make_engine(db_url)
    for ref in [warm, None, *batch]:
        if ref is None:
            ready.wait()
            continue
        with bench_uow(engine, dt.datetime.now(dt.UTC)) as uow:
            ledger.approve(uow, ref, Decimal("5000.00"), plan=DEFAULT_PLAN)
    engine.dispose()


def _apply_all(db_url: str, warm: str, batch: list[str], ready: Barrier) -> None:
    """One writer on the product's path: apply recorded committee decisions (``warm`` and
    ``batch`` are their ids) as ``odd17 committee decide`` and the review flow do, each in a
    transaction of its own (``committee.apply_recorded``: the decision locked, the grant,
    the email queued, the decision marked applied, the balance rows)."""
    engine = make_engine(db_url)
    runner = Runner(engine, Context(actor="bench", config=CONFIG))
    for item in [warm, None, *batch]:
        if item is None:
            ready.wait()
            continue
        assert committee.apply_recorded(runner, int(item)) is not None
    engine.dispose()


def recorded_decisions(engine, refs: list[str]) -> list[str]:  # type: ignore[no-untyped-def]
    """An approval decided for each of ``refs`` (in committee), recorded and not applied yet,
    by three committee members: their ids."""
    with unit_of_work(engine) as s:
        s.add_all(Reviewer(email=e, name=e, interests=[], reviews=False, committee=True,
                           active=True, created_at=START) for e in MEMBERS)
    ids = []
    with bench_uow(engine, START) as uow:
        for ref in refs:
            ids.append(str(committee.record_decision(uow, ref, "approve", present=MEMBERS,
                                                     amount=Decimal("5000.00"), motif="").id))
    return ids


def _plain_all(dsn: str, warm: str, batch: list[str], ready: Barrier) -> None:
    """The floor: the same conditional UPDATE of one balance row and one INSERT, committed,
    once per item of ``batch`` (after one such transaction and ``ready``, as the writers),
    with psycopg alone (no ORM, no reads, no grant). ``warm`` names the balance row: "1",
    shared by every writer, or one of its own (what one writer's lock costs the others)."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        for item in [warm, None, *batch]:
            if item is None:
                ready.wait()
                continue
            with conn.transaction():
                row = conn.execute(
                    "UPDATE bench_balance SET committed = committed + 500000 WHERE id = %s "
                    "AND envelope - committed >= 500000 RETURNING envelope, committed",
                    (int(warm),)).fetchone()
                assert row is not None
                conn.execute("INSERT INTO bench_entries (amount, envelope_after, "
                             "committed_after) VALUES (500000, %s, %s)", row)


def _run_writers(db_url: str, warms: list[str], batches: list[list[str]],
                 target: Callable[[str, str, list[str], Barrier], None] = _approve_all
                 ) -> tuple[float, float]:
    """One process per batch (processes, not threads: threads would share one GIL and
    measure Python rather than the database): seconds from the moment every process is
    connected and warmed up to the last one's end, and seconds including their start."""
    # The writers are forked from this process, which may hold the large ledger's objects
    # (report_benchmark): their garbage collector would walk, and so copy, all of those pages
    # (measured: approvals at half speed). Frozen, the inherited objects are left alone.
    gc.collect()
    gc.freeze()
    context = multiprocessing.get_context("fork")
    ready = context.Barrier(len(batches) + 1)
    processes = [context.Process(target=target, args=(db_url, w, b, ready))
                 for w, b in zip(warms, batches, strict=True)]
    start = time.perf_counter()
    for p in processes:
        p.start()
    ready.wait(timeout=300)
    started = time.perf_counter()
    for p in processes:
        p.join()
    elapsed = time.perf_counter()
    gc.unfreeze()
    if any(p.exitcode != 0 for p in processes):
        raise SystemExit("a writer process failed")
    return elapsed - started, elapsed - start


def _plain_baseline(db_url: str, writers: int, count: int,
                    own_rows: bool = False) -> tuple[float, float]:
    """Seconds for ``writers`` psycopg processes to do ``count`` plain transactions in all, on
    one shared balance row or (``own_rows``) on a row each."""
    import psycopg

    dsn = make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_balance (id int PRIMARY KEY, "
                     "envelope bigint, committed bigint)")
        conn.execute("INSERT INTO bench_balance SELECT n, 10000000000000, 0 "
                     "FROM generate_series(1, %s) AS n ON CONFLICT DO NOTHING", (writers,))
        conn.execute("CREATE TABLE IF NOT EXISTS bench_entries (id bigserial PRIMARY KEY, "
                     "amount bigint, envelope_after bigint, committed_after bigint)")
    items = [str(i) for i in range(count)]
    rows = [str(w + 1 if own_rows else 1) for w in range(writers)]
    return _run_writers(dsn, rows, [items[i::writers] for i in range(writers)],
                        target=_plain_all)


def _print_rates(unit: str, per_run: int, timed: dict[int, list[float]],
                 with_start: dict[int, float] | None = None) -> None:
    """One line per number of writers: the median rate, its ratio to 1 writer, the rounds."""
    rates = {w: per_run / median(v) for w, v in timed.items()}
    for writers, rate in rates.items():
        started = "" if with_start is None else f"  ({with_start[writers]:.0f}/s)"
        print(f"  {writers} writer(s) {rate:8.0f} {unit}/s  ratio to 1 writer "
              f"{rate / rates[1]:.2f}{started}  rounds: "
              + ", ".join(f"{per_run / t:.0f}" for t in timed[writers]))


def writers_benchmark(admin_url: str, per_run: int = 480,
                      counts: tuple[int, ...] = (1, 2, 4, 8),
                      rounds: int = int(os.environ.get("BENCH_REPEATS", 3))) -> list[Figure]:
    """Approvals per second with 1, 2, 4 and 8 writers, then the plain baseline, ``rounds``
    times interleaved; each figure is the median of its rounds."""
    url = make_url(admin_url).set(drivername="postgresql+psycopg")
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"odd17_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        db_url = url.set(database=name).render_as_string(hide_password=False)
        engine = make_engine(db_url)
        init_database(engine, CONFIG, START - dt.timedelta(days=60))
        refs = committee_applications(engine, rounds * (per_run * len(counts) + sum(counts)),
                                      "5000.00")
        most = max(counts)
        # the product's path: decisions recorded beforehand, applied by 1 and by ``most``
        decisions = recorded_decisions(engine, committee_applications(
            engine, rounds * 2 * (per_run + most), "5000.00", offset=len(refs)))
        with bench_uow(engine, START) as uow:  # room for every approval below
            ledger.topup(uow, Decimal("100000000"), reason="bench", key="bench")
        engine.dispose()  # each writer process opens its own connections
        timed: dict[int, list[float]] = {w: [] for w in counts}
        overall: dict[int, list[float]] = {w: [] for w in counts}
        plain_timed: list[float] = []
        plain_overall: list[float] = []
        plain_one: list[float] = []  # the driver alone with 1 writer: how it scales, for reading
        plain_own: list[float] = []  # the same writers on a row each: what the shared row costs
        applied: dict[int, list[float]] = {1: [], most: []}  # committee decisions applied
        for _ in range(rounds):
            for writers in counts:
                warm, mine, refs = refs[:writers], refs[writers:writers + per_run], \
                    refs[writers + per_run:]
                seconds, all_in = _run_writers(db_url, warm,
                                               [mine[i::writers] for i in range(writers)])
                timed[writers].append(seconds)
                overall[writers].append(all_in)
            seconds, all_in = _plain_baseline(db_url, most, per_run)
            plain_timed.append(seconds)
            plain_overall.append(all_in)
            plain_one.append(_plain_baseline(db_url, 1, per_run)[0])
            plain_own.append(_plain_baseline(db_url, most, per_run, own_rows=True)[0])
            for writers in (1, most):
                warm, mine, decisions = decisions[:writers], \
                    decisions[writers:writers + per_run], decisions[writers + per_run:]
                applied[writers].append(_run_writers(
                    db_url, warm, [mine[i::writers] for i in range(writers)],
                    target=_apply_all)[0])
        rates = {w: per_run / median(v) for w, v in timed.items()}
        with_start = {w: per_run / median(v) for w, v in overall.items()}
        plain, plain_with_start = per_run / median(plain_timed), per_run / median(plain_overall)
        plain_single = per_run / median(plain_one)
        plain_apart = per_run / median(plain_own)
        decided = {w: per_run / median(v) for w, v in applied.items()}
        engine = make_engine(db_url)
        with unit_of_work(engine) as s:
            assert audit.check(uow_for(s)) == []
        engine.dispose()
        print("approvals on PostgreSQL (reads, status, grant, tranches, dimension rows "
              "first; under the total row's lock: one statement, the conditional UPDATE with "
              "the entry and the day's row, and the commit):")
        print(f"  (median of {rounds} interleaved rounds, each timed once every writer is "
              "connected and has made one approval; in brackets, counting the processes' start)")
        _print_rates("approvals", per_run, timed, with_start)
        print(f"  plain psycopg, {most} writers (conditional UPDATE + INSERT): {plain:8.0f}/s "
              f"({plain_with_start:.0f}/s)  rounds: "
              + ", ".join(f"{per_run / t:.0f}" for t in plain_timed))
        print(f"  plain psycopg, 1 writer: {plain_single:8.0f}/s; {most} writers at "
              f"{plain / plain_single:.2f}x of it (odd17: {rates[most] / rates[1]:.2f}x)")
        print(f"  plain psycopg, {most} writers on a balance row each: {plain_apart:8.0f}/s, "
              f"{plain_apart / plain_single:.2f}x 1 writer: the one shared row costs "
              f"{1 - plain / plain_apart:.0%} of the throughput")
        print(f"  approvals at {rates[most] / plain:.2f}x of it (target >= 0.25; "
              f"{with_start[most] / plain_with_start:.2f}x counting the start)")
        print("committee decisions applied (committee.apply_recorded, the product's path: "
              "the decision claimed, grant, email queued, balance rows):")
        _print_rates("decisions", per_run, applied)
        print(f"  decisions at {decided[most] / plain:.2f}x of plain psycopg with {most} writers "
              "(target >= 0.25)")
        figures = [
            rate_figure("ledger.approvals", f"approvals on PostgreSQL, {most} writer processes",
                        per_run, per_run / rates[most], per_run / rates[1], "approvals/s",
                        "1 writer", f"{most} writers >= 1 writer",
                        rates[most] >= rates[1]),
            rate_figure("ledger.approvals_plain", f"approvals, {most} writers, vs plain psycopg",
                        per_run, per_run / rates[most], per_run / plain, "approvals/s",
                        f"plain psycopg UPDATE + INSERT, {most} writers", ">= 0.25x",
                        rates[most] >= 0.25 * plain),
            rate_figure("ledger.decisions", f"committee decisions applied, {most} writers",
                        per_run, per_run / decided[most], per_run / decided[1], "decisions/s",
                        "1 writer", f"{most} writers >= 1 writer",
                        decided[most] >= decided[1]),
            rate_figure("ledger.decisions_plain",
                        f"committee decisions, {most} writers, vs plain psycopg",
                        per_run, per_run / decided[most], per_run / plain, "decisions/s",
                        f"plain psycopg UPDATE + INSERT, {most} writers", ">= 0.25x",
                        decided[most] >= 0.25 * plain),
            rate_figure("ledger.plain_scaling", f"plain psycopg alone, {most} writers vs 1",
                        per_run, per_run / plain, per_run / plain_single, "transactions/s",
                        "plain psycopg, 1 writer", "", None),
            rate_figure("ledger.plain_own_rows",
                        f"plain psycopg, {most} writers, a balance row each, vs 1 writer",
                        per_run, per_run / plain_apart, per_run / plain_single,
                        "transactions/s", "plain psycopg, 1 writer", "", None),
        ]
        if 2 in rates:  # for reading: how far two writers, one per core, go
            figures.insert(1, rate_figure(
                "ledger.approvals_2", "approvals on PostgreSQL, 2 writer processes", per_run,
                per_run / rates[2], per_run / rates[1], "approvals/s", "1 writer", "", None))
        return figures
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def payments_benchmark(count: int, baseline_lines: int = 1000) -> list[Figure]:
    """A bank statement of ``count`` payments through the disbursement flow (SQLite)."""
    work = Path(tempfile.mkdtemp(prefix="odd17-payments-bench-"))
    os.environ.setdefault("PREFECT_HOME", str(work / "prefect"))
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    # a loaded machine starts Prefect's ephemeral server slowly
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    url = f"sqlite:///{work / 'flow.db'}"
    now = dt.datetime.now(dt.UTC)
    engine = make_engine(url)
    init_database(engine, CONFIG, now - dt.timedelta(days=60))
    grants = (count + 1) // 2  # two tranches paid on each
    refs = committee_applications(engine, grants, "5000.00", offset=10_000)
    with bench_uow(engine, now) as uow:
        ledger.topup(uow, Decimal("100000000"), reason="bench", key="bench")
    for start in range(0, len(refs), 500):
        with bench_uow(engine, now) as uow:
            for ref in refs[start:start + 500]:
                ledger.approve(uow, ref, Decimal("5000.00"), plan=DEFAULT_PLAN)
    lines = [(ref, tranche, f"VIR-{tranche}-{i}") for tranche in (1, 2)
             for i, ref in enumerate(refs)][:count]
    statement = work / "releve.csv"
    statement.write_text("reference,tranche,payment_reference,date\n" + "".join(
        f"{ref},{tranche},{pref},{now.date().isoformat()}\n" for ref, tranche, pref in lines))
    engine.dispose()
    with closing(sqlite3.connect(work / "flow.db", isolation_level=None)) as conn:
        conn.execute("VACUUM INTO ?", (str(work / "alone.db"),))

    alone = make_engine(f"sqlite:///{work / 'alone.db'}")
    start_t = time.perf_counter()
    for ref, tranche, pref in lines[:baseline_lines]:
        with bench_uow(alone, now) as uow:
            ledger.pay(uow, ref, tranche, pref, paid_on=now.date())
    per_line = (time.perf_counter() - start_t) / baseline_lines
    alone.dispose()
    print(f"payments one transaction each (ledger.pay), {baseline_lines:,} lines: "
          f"{1 / per_line:,.0f}/s", flush=True)

    from flows.common import local_runs
    from flows.disbursement import disbursement_flow

    os.environ["ODD17_DATABASE_URL"] = url
    reset_caches()
    dispose_engines()
    with local_runs():
        disbursement_flow(payment_files=[])  # Prefect's ephemeral server starts here
        start_t = time.perf_counter()
        summary = disbursement_flow(payment_files=[str(statement)])
        elapsed = time.perf_counter() - start_t
    assert summary["recorded"] == len(lines) and not summary["refused"], summary["refused"][:3]
    with unit_of_work(make_engine(url)) as s:
        assert audit.check(uow_for(s)) == []
    rate, base_rate = len(lines) / elapsed, 1 / per_line
    print(f"bank statement of {len(lines):,} payments through the disbursement flow (SQLite): "
          f"{elapsed:.2f} s, {rate:,.0f} payments/s (target >= 1,000/s)")
    print(f"  baseline, one transaction per payment (ledger.pay), first {baseline_lines:,} "
          f"lines: {base_rate:,.0f} payments/s; ratio {base_rate / rate:.2f}")
    return [rate_figure("ledger.payments", f"disbursement flow, {len(lines):,} payments",
                        len(lines), elapsed, per_line * len(lines), "payments/s",
                        "one transaction per payment (ledger.pay)", ">= 1,000/s",
                        rate >= 1000)]


def main() -> None:
    parser = argparse.ArgumentParser(description="odd17 ledger benchmarks")
    parser.add_argument("pg_url", nargs="?", default=os.environ.get("ODD17_BENCH_PG_URL"),
                        help="PostgreSQL admin URL: also measure concurrent approvals")
    parser.add_argument("--entries", type=int, default=1_000_000,
                        help="entries of the large ledger (default 1,000,000; 0: skip the "
                             "report and --check)")
    parser.add_argument("--payments", type=int, default=10_000,
                        help="lines of the bank statement (default 10,000; 0: skip)")
    json_option(parser)
    args = parser.parse_args()
    figures = report_benchmark(args.entries) if args.entries else []
    if args.pg_url:  # before the flow: the writers are forked, Prefect's threads must not be
        figures += writers_benchmark(args.pg_url)
    else:
        print("(no PostgreSQL URL given: concurrent writers not measured)")
    if args.payments:
        figures += payments_benchmark(args.payments)
    write_json(args.json, "ledger", figures, entries=args.entries,
               postgresql=bool(args.pg_url))


if __name__ == "__main__":
    main()
