"""The sign-in rate limits under concurrency: real processes asking for links at the same time
(tests/signin_race_worker.py) never get more links than the limit, per address or per client.
Meaningful on PostgreSQL (READ COMMITTED: without the lock, two counts can both see room)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from models import SignInRequest
from odd17.db import unit_of_work

ROOT = Path(__file__).resolve().parent.parent
WORKERS = 6


def race(db_url: str, tmp_path: Path, plans: list[dict[str, object]]) -> list[dict[str, object]]:
    go = tmp_path / f"go-{uuid.uuid4().hex}"
    env = {**os.environ, "ODD17_DATABASE_URL": db_url}
    procs = []
    for plan in plans:
        path = tmp_path / f"plan-{uuid.uuid4().hex}.json"
        path.write_text(json.dumps(plan))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "tests.signin_race_worker", str(go), str(path)], cwd=ROOT,
            env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    time.sleep(1.5)  # let every worker finish importing (not a correctness condition)
    go.touch()
    lines = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        lines += [json.loads(line) for line in out.splitlines()]
    return lines


def recorded(engine: Engine) -> int:
    with unit_of_work(engine) as session:
        return session.scalar(select(func.count()).select_from(SignInRequest)) or 0


def test_concurrent_requests_for_one_address_stop_at_its_limit(
        engine: Engine, db_url: str, tmp_path: Path) -> None:
    addresses = [f"porteur{i}@exemple-associatif.fr" for i in range(15)]
    lines = race(db_url, tmp_path, [{"addresses": addresses, "client": f"10.0.0.{w}",
                                     "per_client": 1000} for w in range(WORKERS)])
    assert len(lines) == WORKERS * len(addresses)
    accepted = Counter(line["address"] for line in lines if line["accepted"])
    assert accepted == Counter({address: 2 for address in addresses})  # max_per_address
    assert recorded(engine) == 2 * len(addresses)


def test_concurrent_requests_from_one_client_stop_at_its_limit(
        engine: Engine, db_url: str, tmp_path: Path) -> None:
    plans = [{"addresses": [f"p{w}-{i}@exemple-associatif.fr" for i in range(6)],
              "client": "192.0.2.7", "per_client": 10} for w in range(WORKERS)]
    lines = race(db_url, tmp_path, plans)
    assert sum(line["accepted"] for line in lines) == 10
    assert recorded(engine) == 10


pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
