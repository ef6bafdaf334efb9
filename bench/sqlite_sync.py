"""What ``PRAGMA synchronous=FULL`` costs against ``NORMAL`` on SQLite in WAL mode.

    python bench/sqlite_sync.py            # 300 commits per run
    python bench/sqlite_sync.py 1000

Commits per second of a real ledger transaction (``ledger.topup``: the entry, the running
balance, the day's row, in one ``BEGIN IMMEDIATE`` transaction, as ``odd17 topup`` does), on a
fresh initialised database in a temporary folder, with each setting; the two settings alternate
over 3 rounds and the median is reported, so that a noisy machine moves both. With FULL, SQLite
syncs the WAL file at every commit; with NORMAL only at checkpoints, so a power loss (not a
crash: the operating system still has the data) may lose the last commits."""

from __future__ import annotations

import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from odd17.db import make_engine
from odd17.services import ledger
from odd17.services.setup import init_database
from odd17.settings import load_fund_config
from odd17.uow import Context, open_uow

NOW = dt.datetime(2027, 1, 4, 9, 0, tzinfo=dt.UTC)


def commits_per_second(folder: Path, synchronous: str, commits: int) -> float:
    path = folder / f"{synchronous}-{time.monotonic_ns()}.db"
    engine = make_engine(f"sqlite:///{path}", sqlite_synchronous=synchronous)
    config = load_fund_config(None)
    init_database(engine, config, NOW)
    start = time.perf_counter()
    for i in range(commits):
        with open_uow(engine, Context(actor="bench", config=config, clock=lambda: NOW)) as uow:
            ledger.topup(uow, Decimal("1.00"), reason="bench", key=f"bench:{i}")
    elapsed = time.perf_counter() - start
    engine.dispose()
    return commits / elapsed


def main() -> None:
    commits = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    runs: dict[str, list[float]] = {"NORMAL": [], "FULL": []}
    # Next to the default database (the working directory), on the disk a user would use.
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        for _ in range(3):
            for mode in runs:
                runs[mode].append(commits_per_second(Path(tmp), mode, commits))
    normal, full = (statistics.median(runs[m]) for m in ("NORMAL", "FULL"))
    for mode, rates in runs.items():
        print(f"{mode:<6} median {statistics.median(rates):8.1f} commits/s  "
              f"(runs: {', '.join(f'{r:.1f}' for r in rates)})")
    print(f"FULL / NORMAL: {full / normal:.2f}")


if __name__ == "__main__":
    main()
