"""The ``intake`` flow: read documents from files and folders, store the well-formed ones."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.utilities.annotations import quote

from flows.common import FLOW_DEFAULTS, TASK_DEFAULTS
from odd17.db import get_engine
from odd17.runtime import actor, utcnow
from odd17.services import intake
from odd17.services.pipeline import batches
from odd17.settings import get_settings


@task(name="read-documents", **TASK_DEFAULTS)
def read_documents(paths: list[str], language: str) -> list[intake.RawDocument]:
    return intake.read_sources(paths, language)


@task(name="intake-batch", **TASK_DEFAULTS)
def intake_batch(batch: list[intake.RawDocument], language: str) -> list[intake.Outcome]:
    # A retried batch is harmless: documents already stored are recognised as duplicates.
    return intake.submit_documents(
        get_engine(), batch, now=utcnow(), actor=actor("prefect:intake"), language=language
    )


@flow(name="intake", **FLOW_DEFAULTS)
def intake_flow(paths: list[str]) -> list[dict[str, Any]]:
    """Store every well-formed document found in ``paths``; report each one's outcome."""
    settings = get_settings()
    raws = read_documents(paths, settings.language)
    outcomes: list[intake.Outcome] = []
    for batch in batches(raws, settings.batch_size):
        outcomes.extend(intake_batch(quote(batch), settings.language))
    refused = sum(o.status == "refused" for o in outcomes)
    duplicates = sum(o.duplicate for o in outcomes)
    get_run_logger().info(
        "%d document(s): %d stored, %d already known, %d refused",
        len(outcomes), len(outcomes) - refused - duplicates, duplicates, refused,
    )
    return [o.as_json() for o in outcomes]
