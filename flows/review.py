"""The ``review`` flow: assign what can be assigned, move fully reviewed applications to the
committee, apply recorded decisions, and end. Waiting for people never holds a process; a
run that dies loses nothing, since each step commits on its own and the next run resumes."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task

from flows.common import FLOW_DEFAULTS, TASK_DEFAULTS
from models import DomainError
from odd17.db import get_engine, unit_of_work
from odd17.runtime import actor, utcnow
from odd17.services import review
from odd17.settings import get_fund_config


@task(name="assign-reviewers", **TASK_DEFAULTS)
def assign_reviewers() -> dict[str, Any]:
    with unit_of_work(get_engine()) as session:
        result = review.assign(session, None, get_fund_config().review,
                               actor=actor("prefect:review"), now=utcnow())
    return {"assigned": len(result.assigned), "short": result.short}


@task(name="advance-reviewed", **TASK_DEFAULTS)
def advance_reviewed() -> list[str]:
    with unit_of_work(get_engine()) as session:
        return review.advance_reviewed(session, actor=actor("prefect:review"), now=utcnow())


@task(name="apply-decisions", **TASK_DEFAULTS)
def apply_decisions() -> dict[str, Any]:
    config = get_fund_config()
    engine = get_engine()
    with unit_of_work(engine) as session:
        pending = review.pending_decisions(session)
    applied, failed = 0, []
    for decision_id in pending:  # one transaction each: a refusal never undoes the others
        try:
            with unit_of_work(engine) as session:
                review.apply_decision(session, decision_id, plan=config.disbursement.plan(),
                                      alert_threshold=config.disbursement.alert_threshold,
                                      actor=actor("prefect:review"), now=utcnow())
            applied += 1
        except DomainError as exc:
            with unit_of_work(engine) as session:
                review.mark_failed(session, decision_id, str(exc))
            failed.append({"decision": decision_id, "error": str(exc)})
    return {"applied": applied, "failed": failed}


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
