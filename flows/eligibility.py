"""The ``eligibility`` flow: evaluate the eligibility rule set on pending (or all not-yet-reviewed)
applications."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task

from flows.common import FLOW_DEFAULTS, TASK_DEFAULTS
from odd17.db import get_engine
from odd17.runtime import actor, utcnow
from odd17.services import eligibility
from odd17.services.batching import batches
from odd17.settings import get_fund_config, get_settings


@task(name="evaluate-references", **TASK_DEFAULTS)
def evaluate_references(references: list[str]) -> eligibility.Tally:
    # Named applications are evaluated again whatever their verdict, as on the command line.
    ids = eligibility.candidate_ids(get_engine(), references=references)
    verdicts = eligibility.evaluate_ids(
        get_engine(), ids, get_fund_config().policy(), now=utcnow(),
        actor=actor("prefect:eligibility"), reevaluate=True,
    )
    return eligibility.Tally.of(verdicts)


@task(name="evaluate-batch", **TASK_DEFAULTS)
def evaluate_batch(after_id: int, reevaluate: bool) -> tuple[eligibility.Tally, int | None]:
    # ConcurrentChange rolls the batch back; the retry reads the new statuses.
    verdicts, cursor = eligibility.evaluate_next(
        get_engine(), get_fund_config().policy(), after_id=after_id,
        limit=get_settings().batch_size, now=utcnow(), actor=actor("prefect:eligibility"),
        reevaluate=reevaluate,
    )
    return eligibility.Tally.of(verdicts), cursor


@flow(name="eligibility", **FLOW_DEFAULTS)
def eligibility_flow(
    references: list[str] | None = None, reevaluate: bool = False
) -> dict[str, Any]:
    """Evaluate the pending applications (or ``references``, whatever their verdict); with
    ``reevaluate``, also those already eligible or ineligible, e.g. after a policy change.
    Returns a summary: counts by verdict, failures by rule, and the applications whose verdict
    changed."""
    tally = eligibility.Tally()
    if references:
        for chunk in batches(references, get_settings().batch_size):
            tally.add(evaluate_references(chunk))
    else:
        cursor: int | None = 0
        while cursor is not None:
            part, cursor = evaluate_batch(cursor, reevaluate)
            tally.add(part)
    get_run_logger().info(
        "%d application(s) evaluated: %d eligible, %d ineligible",
        tally.evaluated, tally.eligible, tally.evaluated - tally.eligible,
    )
    return tally.summary()
