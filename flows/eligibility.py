"""The ``eligibility`` flow: evaluate rule set v1 on pending (or all not-yet-reviewed)
applications."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task

from flows.common import FLOW_DEFAULTS, TASK_DEFAULTS
from odd17.db import get_engine
from odd17.runtime import actor, utcnow
from odd17.services import eligibility
from odd17.services.pipeline import batches
from odd17.settings import get_fund_config, get_settings


@task(name="select-applications", **TASK_DEFAULTS)
def select_applications(references: list[str] | None, reevaluate: bool) -> list[int]:
    return eligibility.candidate_ids(get_engine(), references=references, reevaluate=reevaluate)


@task(name="evaluate-batch", **TASK_DEFAULTS)
def evaluate_batch(ids: list[int], reevaluate: bool) -> list[eligibility.Verdict]:
    # ConcurrentChange rolls the batch back; the retry reads the new statuses.
    return eligibility.evaluate_ids(
        get_engine(), ids, get_fund_config().policy(), now=utcnow(),
        actor=actor("prefect:eligibility"), reevaluate=reevaluate,
    )


@flow(name="eligibility", **FLOW_DEFAULTS)
def eligibility_flow(
    references: list[str] | None = None, reevaluate: bool = False
) -> list[dict[str, Any]]:
    """Evaluate the pending applications (or ``references``); with ``reevaluate``, also those
    already eligible or ineligible, e.g. after a policy change."""
    ids = select_applications(references, reevaluate)
    verdicts: list[eligibility.Verdict] = []
    for batch in batches(ids, get_settings().batch_size):
        verdicts.extend(evaluate_batch(batch, reevaluate or bool(references)))
    eligible = sum(v.status == "eligible" for v in verdicts)
    get_run_logger().info(
        "%d application(s) evaluated: %d eligible, %d ineligible",
        len(verdicts), eligible, len(verdicts) - eligible,
    )
    return [
        {"reference": v.reference, "previous": v.previous, "status": v.status,
         "failing": v.failing}
        for v in verdicts
    ]
