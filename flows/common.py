"""Task defaults shared by the flows."""

from __future__ import annotations

from typing import Any

from prefect.cache_policies import NONE

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
