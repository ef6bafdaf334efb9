"""The ``disbursement`` flow: record payment batches, list the tranches due, watch the
envelope alert."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task

from flows.common import FLOW_DEFAULTS, TASK_DEFAULTS
from odd17.db import get_engine
from odd17.runtime import actor, utcnow
from odd17.services import finance, payments
from odd17.uow import Context, Runner, open_uow


@task(name="record-payments", **TASK_DEFAULTS)
def record_payments(path: str) -> payments.PaymentTally:
    # Re-running after a failure is harmless: payment references are idempotency keys.
    runner = Runner(get_engine(), Context.from_settings(actor("prefect:disbursement")))
    return payments.record(runner, payments.read_orders(Path(path)))


@task(name="tranches-due", **TASK_DEFAULTS)
def tranches_due(on: dt.date) -> list[finance.TrancheDue]:
    with open_uow(get_engine(), Context.from_settings(actor("prefect:disbursement"))) as uow:
        return finance.tranches_due(uow, on)


@task(name="envelope-status", **TASK_DEFAULTS)
def envelope_status() -> dict[str, Any]:
    with open_uow(get_engine(), Context.from_settings(actor("prefect:disbursement"))) as uow:
        report = finance.finance_report(uow)
    return {key: report[key] for key in ("envelope", "committed", "disbursed", "available",
                                         "alert", "alert_threshold")}


@flow(name="disbursement", **FLOW_DEFAULTS)
def disbursement_flow(payment_files: list[str] | None = None,
                      as_of: dt.date | None = None) -> dict[str, Any]:
    """Record the payments of ``payment_files`` (CSV or JSON Lines), then report the tranches
    due at ``as_of`` (default today) and the state of the envelope alert."""
    logger = get_run_logger()
    recorded = already = 0
    refused: list[dict[str, str]] = []
    for path in payment_files or []:
        tally = record_payments(path)
        recorded, already = recorded + tally.recorded, already + tally.already
        refused.extend(tally.refused)
    for refusal in refused:
        logger.warning("payment refused %s: %s", refusal["source"], refusal["error"])
    due = tranches_due(as_of or utcnow().date())
    envelope = envelope_status()
    if envelope["alert"]:
        logger.warning("envelope alert: %s available, under %s of the envelope",
                       envelope["available"], envelope["alert_threshold"])
    return {"recorded": recorded, "already_recorded": already, "refused": refused,
            "tranches_due": due, "envelope": envelope}
