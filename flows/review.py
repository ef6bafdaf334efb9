"""The ``review`` flow: assign what can be assigned, move fully reviewed applications to the
committee, apply recorded decisions, and end. Waiting for people never holds a process; a
run that dies loses nothing, since each step commits on its own and the next run resumes."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task

from flows.common import FLOW_DEFAULTS, TASK_DEFAULTS
from odd17.db import get_engine
from odd17.runtime import actor
from odd17.services import assignment, committee, scoring
from odd17.uow import Context, Runner


def _runner() -> Runner:
    return Runner(get_engine(), Context.from_settings(actor("prefect:review")))


@task(name="assign-reviewers", **TASK_DEFAULTS)
def assign_reviewers() -> dict[str, Any]:
    with _runner().uow() as uow:
        result = assignment.assign(uow)
    return {"assigned": len(result.assigned), "short": result.short}


@task(name="advance-reviewed", **TASK_DEFAULTS)
def advance_reviewed() -> list[str]:
    with _runner().uow() as uow:
        return scoring.advance_reviewed(uow)


@task(name="apply-decisions", **TASK_DEFAULTS)
def apply_decisions() -> dict[str, Any]:
    result = committee.apply_pending(_runner())
    return {"applied": result.applied, "failed": result.failed}


@flow(name="review", **FLOW_DEFAULTS)
def review_flow() -> dict[str, Any]:
    assigned = assign_reviewers()
    advanced = advance_reviewed()
    decisions = apply_decisions()
    logger = get_run_logger()
    for reference, available in assigned["short"].items():
        logger.warning("%s: only %d reviewer(s) without conflict; stays eligible",
                       reference, available)
    return {"assigned": assigned["assigned"], "short": assigned["short"],
            "to_committee": advanced, **decisions}
