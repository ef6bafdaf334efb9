"""Intake then eligibility, batch by batch, without Prefect (the CLI's path; the flows run the
same service functions as Prefect tasks)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy import Engine, select

from models import Application, Status
from odd17.db import unit_of_work
from odd17.services import eligibility, intake
from odd17.services.batching import batches
from rules.eligibility import EligibilityPolicy

__all__ = ["batches", "evaluate_references", "submit_and_evaluate"]
Progress = Callable[[int], None]


def submit_and_evaluate(
    engine: Engine,
    raws: list[intake.RawDocument],
    policy: EligibilityPolicy,
    *,
    now: dt.datetime,
    actor: str,
    language: str,
    batch_size: int,
    progress: Progress | None = None,
) -> list[intake.Outcome]:
    outcomes: list[intake.Outcome] = []
    for batch in batches(raws, batch_size):
        outcomes.extend(
            intake.submit_documents(engine, batch, now=now, actor=actor, language=language)
        )
        if progress:
            progress(len(batch))
    new_refs = [o.reference for o in outcomes if o.reference and not o.duplicate]
    verdicts = evaluate_references(
        engine, new_refs, policy, now=now, actor=actor, batch_size=batch_size
    )
    # Then whatever an interrupted run (or a concurrent one) left waiting in ``submitted``:
    # its documents are duplicates now, and nothing else would ever evaluate them.
    verdicts += evaluate_references(
        engine, None, policy, now=now, actor=actor, batch_size=batch_size
    )
    verdict_of = {v.reference: v for v in verdicts}
    for outcome in outcomes:  # duplicates within this run too
        verdict = verdict_of.get(outcome.reference or "")
        if verdict is not None:
            outcome.status, outcome.failing = verdict.status, verdict.failing
    _refresh_statuses(engine, [o for o in outcomes if o.reference and o.reference not in
                               verdict_of and o.status == Status.submitted])
    return outcomes


def _refresh_statuses(engine: Engine, outcomes: list[intake.Outcome]) -> None:
    """Outcomes still showing ``submitted`` whose application another process evaluated
    meanwhile take the stored status."""
    by_ref = {o.reference: o for o in outcomes}
    for chunk in batches(list(by_ref), 500):
        with unit_of_work(engine) as session:
            for reference, status in session.execute(
                select(Application.reference, Application.status)
                .where(Application.reference.in_(chunk))
            ):
                by_ref[reference].status = str(status)


def evaluate_references(
    engine: Engine,
    references: list[str] | None,
    policy: EligibilityPolicy,
    *,
    now: dt.datetime,
    actor: str,
    batch_size: int,
    reevaluate: bool = False,
) -> list[eligibility.Verdict]:
    """Evaluate the named applications (``None``: every pending one)."""
    if references is not None and not references:
        return []
    verdicts: list[eligibility.Verdict] = []
    if references is None:
        cursor: int | None = 0
        while cursor is not None:
            part, cursor = eligibility.evaluate_next(
                engine, policy, after_id=cursor, limit=batch_size, now=now, actor=actor,
                reevaluate=reevaluate,
            )
            verdicts.extend(part)
        return verdicts
    ids = [
        app_id
        for chunk in batches(references, 500)
        for app_id in eligibility.candidate_ids(engine, references=chunk)
    ]
    for batch in batches(ids, batch_size):
        verdicts.extend(
            eligibility.evaluate_ids(
                engine, batch, policy, now=now, actor=actor, reevaluate=reevaluate
            )
        )
    return verdicts
