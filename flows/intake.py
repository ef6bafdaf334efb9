"""The ``intake`` flow: read documents from files and folders, store the well-formed ones and
judge their eligibility in the same pass (the service call of ``odd17 submit``)."""

from __future__ import annotations

from typing import Any, cast

from prefect import flow, get_run_logger, task
from prefect.utilities.annotations import opaque, quote

from flows.common import FLOW_DEFAULTS, TASK_DEFAULTS
from odd17.db import get_engine
from odd17.runtime import actor
from odd17.services import eligibility, intake
from odd17.services.batching import batches
from odd17.settings import get_settings
from odd17.uow import Context, Runner, open_uow


@task(name="read-documents", **TASK_DEFAULTS)
def read_documents(paths: list[str], language: str) -> opaque:  # of list[RawDocument]
    # opaque(): Prefect links the task's result to its state element by element (one level
    # deep, ``link_state_to_result``): ~0.2 s for 10^4 documents, for a dependency tracking
    # that quote() drops anyway when the batches are handed on.
    return opaque(intake.read_sources(paths, language))


@task(name="intake-batch", **TASK_DEFAULTS)
def intake_batch(batch: list[intake.RawDocument], language: str) -> intake.Tally:
    # A retried batch is harmless: documents already stored are recognised as duplicates.
    # Judged in the pass that stores them, as by ``odd17 submit``: the eligibility flow is
    # left the re-evaluations and whatever an older run left in ``submitted``.
    runner = Runner(get_engine(), Context.from_settings(actor("prefect:intake")))
    outcomes = intake.submit_documents(runner, batch, policy=runner.context.config.policy(),
                                       language=language)
    return intake.Tally.of(outcomes)


@task(name="count-pending", **TASK_DEFAULTS)
def count_pending() -> int:
    with open_uow(get_engine(), Context.from_settings(actor("prefect:intake"))) as uow:
        return eligibility.pending_count(uow)


@flow(name="intake", **FLOW_DEFAULTS)
def intake_flow(paths: list[str]) -> dict[str, Any]:
    """Store every well-formed document found in ``paths``, each new application judged in
    the same pass. Returns a summary: counts (eligible and ineligible among the new ones,
    failures by rule, ``pending``: applications still waiting in ``submitted``, left by an
    older run, for which the caller starts the ``eligibility`` flow; none, no eligibility flow
    run to pay for), the new references, and each refused document with its errors (the
    stored ones are in the database; Prefect would otherwise walk thousands of outcomes in
    the flow's result)."""
    settings = get_settings()
    raws: list[intake.RawDocument] = read_documents(paths, settings.language).unwrap()
    tally = intake.Tally()
    for batch in batches(raws, settings.batch_size):
        # quote(): Prefect hands the task the list itself, without walking it for futures
        tally.add(intake_batch(cast("list[intake.RawDocument]", quote(batch)), settings.language))
    logger = get_run_logger()
    for refusal in tally.refused:
        logger.warning("refused %s: %s", refusal["source"], "; ".join(
            f"{e['field']}: {e['message']}" for e in refusal["errors"]))
    logger.info("%d document(s): %d stored (%d eligible, %d ineligible), %d already known, "
                "%d refused", tally.received, len(tally.created), tally.eligible,
                tally.ineligible, tally.duplicates, len(tally.refused))
    return {**tally.summary(), "pending": count_pending()}
