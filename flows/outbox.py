"""The ``outbox`` flow: send every due message of the transactional outbox."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE

from flows.common import FLOW_DEFAULTS
from odd17.db import get_engine
from odd17.runtime import actor
from odd17.services import outbox
from odd17.settings import get_settings
from odd17.uow import Context, Runner


# No task retries here: the dispatcher keeps its own per-message attempts and backoff.
@task(name="dispatch-outbox", cache_policy=NONE, persist_result=False)
def dispatch_outbox() -> dict[str, Any]:
    runner = Runner(get_engine(), Context.from_settings(actor("prefect:outbox")))
    report = outbox.send(runner, outbox.MailSettings.from_settings(get_settings()))
    return {"sent": report.sent, "retried": report.retried, "failed": report.failed,
            "errors": report.errors[:50], "unreachable": report.unreachable,
            "waiting": report.waiting}


@flow(name="outbox", **FLOW_DEFAULTS)
def outbox_flow() -> dict[str, Any]:
    summary = dispatch_outbox()
    logger = get_run_logger()
    for error in summary["errors"]:
        logger.warning("%s", error)
    if summary["unreachable"]:  # the messages wait for the next run, no attempt used up
        logger.warning("%s ; %d message(s) en attente", summary["unreachable"],
                       summary["waiting"])
    logger.info("outbox: %d sent, %d to retry, %d failed", summary["sent"], summary["retried"],
                summary["failed"])
    return summary
