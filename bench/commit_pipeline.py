"""A probe, not a goal line (not in ``make bench``): what sending the COMMIT with the
statement would give the approvals with many writers.

Plain psycopg, one statement (the conditional UPDATE of one balance row and the INSERT of its
entry, as a CTE), then COMMIT:

- ``after``: the COMMIT sent once the statement's result is back, as odd17's approvals do
  (the row's lock is held across the client's turn);
- ``pipelined``: the COMMIT sent with the statement (psycopg's pipeline mode), so that the
  server commits without waiting for the client.

Each with 1, 2 and 8 writer processes, timed once every process has made one transaction;
medians of ``--rounds`` interleaved rounds.

    python bench/commit_pipeline.py POSTGRESQL_ADMIN_URL [--rounds 3] [--transactions 2400]

A scratch database is created, then dropped."""

from __future__ import annotations

import argparse
import statistics
import sys
import uuid
from multiprocessing.synchronize import Barrier
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ledger import _run_writers  # the writers benchmark's own process harness

STATEMENT = (
    "WITH moved AS (UPDATE probe_balance SET committed = committed + 500000 WHERE id = 1 "
    "AND envelope - committed >= 500000 RETURNING envelope, committed) "
    "INSERT INTO probe_entries (amount, envelope_after, committed_after) "
    "SELECT 500000, envelope, committed FROM moved RETURNING id")


def _writer(dsn: str, mode: str, batch: list[str], ready: Barrier) -> None:
    """One writer process (``ledger._run_writers``'s target): one transaction, ``ready``,
    then one transaction per item of ``batch``."""
    with psycopg.connect(dsn) as conn:
        def one() -> None:
            if mode == "after":
                assert conn.execute(STATEMENT).fetchone() is not None
                conn.commit()
            else:
                with conn.pipeline():
                    cursor = conn.execute(STATEMENT)
                    conn.execute("COMMIT")
                    assert cursor.fetchone() is not None
        one()
        ready.wait()
        for _ in batch:
            one()


def _rate(dsn: str, mode: str, writers: int, total: int) -> float:
    each = total // writers
    seconds, _ = _run_writers(dsn, [mode] * writers, [["x"] * each] * writers, _writer)
    return writers * each / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("admin_url", help="a PostgreSQL admin URL (postgresql://…)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--transactions", type=int, default=2400)
    args = parser.parse_args()
    name = f"odd17_probe_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    dsn = psycopg.conninfo.make_conninfo(args.admin_url, dbname=name)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE probe_balance (id int PRIMARY KEY, envelope bigint, "
                         "committed bigint)")
            conn.execute("CREATE TABLE probe_entries (id serial PRIMARY KEY, amount bigint, "
                         "envelope_after bigint, committed_after bigint)")
            conn.execute("INSERT INTO probe_balance VALUES (1, 10000000000000, 0)")
        rates: dict[tuple[str, int], list[float]] = {}
        for _ in range(args.rounds):
            for mode in ("after", "pipelined"):
                for writers in (1, 2, 8):
                    rates.setdefault((mode, writers), []).append(
                        _rate(dsn, mode, writers, args.transactions))
        for mode in ("after", "pipelined"):
            one = statistics.median(rates[(mode, 1)])
            for writers in (1, 2, 8):
                rate = statistics.median(rates[(mode, writers)])
                print(f"COMMIT {mode:<9} {writers} writer(s) {rate:7,.0f}/s  "
                      f"{rate / one:4.2f}x one writer  rounds: "
                      + ", ".join(f"{r:,.0f}" for r in rates[(mode, writers)]))
    finally:
        with psycopg.connect(args.admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
