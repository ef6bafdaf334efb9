"""Task defaults shared by the flows, and how flows are called inside one of odd17's own
processes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect.cache_policies import NONE
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

# Results stay in memory (nothing to persist between runs: the database is the state), no
# input hashing for caching (a batch of 2,000 documents would be hashed for nothing), and
# retries with backoff for what touches the database or the disk.
TASK_DEFAULTS: dict[str, Any] = {
    "cache_policy": NONE,
    "persist_result": False,
    "retries": 3,
    "retry_delay_seconds": [1, 2, 4],
}
FLOW_DEFAULTS: dict[str, Any] = {"persist_result": False, "log_prints": False}


@contextmanager
def local_runs() -> Iterator[None]:
    """Flow runs called in this process (the demo, benchmarks): no flow-run heartbeats.

    Prefect 3.8 wraps each flow run in a heartbeat thread that sleeps in 1 s steps and joins it
    at the end of the run (``prefect.flow_engine._send_heartbeats``): ~1 s per flow run
    whatever its size. Heartbeats only feed a "zombie run" automation for runs started by a
    deployment, whose process may die unseen; here the caller is the process running the flow
    and sees it die. Retries, states and the run history on the Prefect server are unchanged.
    ``odd17 serve`` does not use this: its deployments keep Prefect's heartbeats."""
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield
