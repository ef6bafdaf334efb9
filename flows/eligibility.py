"""The ``eligibility`` flow: evaluate the eligibility rule set on pending (or all not-yet-reviewed)
applications."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task

from flows.common import FLOW_DEFAULTS, TASK_DEFAULTS
from odd17.db import get_engine
from odd17.runtime import actor
from odd17.services import eligibility
from odd17.services.batching import batches
from odd17.settings import get_settings
from odd17.uow import Context, open_uow


def _context() -> Context:
    return Context.from_settings(actor("prefect:eligibility"))


@task(name="evaluate-references", **TASK_DEFAULTS)
def evaluate_references(references: list[str], reevaluate: bool) -> eligibility.Tally:
    with open_uow(get_engine(), _context()) as uow:
        ids = eligibility.candidate_ids(uow, references=references, reevaluate=reevaluate)
        return eligibility.Tally.of(eligibility.evaluate_batch(uow, ids, reevaluate=reevaluate))


@task(name="evaluate-batch", **TASK_DEFAULTS)
def evaluate_batch(after_id: int, reevaluate: bool) -> tuple[eligibility.Tally, int | None]:
    # ConcurrentChange rolls the batch back; the retry reads the new statuses.
    with open_uow(get_engine(), _context()) as uow:
        verdicts, cursor = eligibility.evaluate_next(
            uow, after_id=after_id, limit=get_settings().batch_size, reevaluate=reevaluate)
    return eligibility.Tally.of(verdicts), cursor


@flow(name="eligibility", **FLOW_DEFAULTS)
def eligibility_flow(
    references: list[str] | None = None, reevaluate: bool = False
) -> dict[str, Any]:
    """Evaluate the pending applications (or those of them named in ``references``); with
    ``reevaluate``, also those already eligible or ineligible, e.g. after a policy change.
    Returns a summary: counts by verdict, failures by rule, and the applications whose verdict
    changed."""
    tally = eligibility.Tally()
    if references:
        for chunk in batches(references, get_settings().batch_size):
            tally.add(evaluate_references(chunk, reevaluate))
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
