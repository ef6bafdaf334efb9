"""Intake then eligibility, batch by batch, without Prefect (the CLI's path; the flows run the
same service functions as Prefect tasks)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from odd17.services import eligibility, intake
from odd17.services.batching import batches
from odd17.uow import Runner
from rules.eligibility import EligibilityPolicy

__all__ = ["batches", "evaluate_references", "submit_and_evaluate"]
Progress = Callable[[int], None]


def submit_and_evaluate(
    runner: Runner,
    raws: Iterable[intake.RawDocument],
    policy: EligibilityPolicy | None = None,
    *,
    language: str,
    batch_size: int,
    progress: Progress | None = None,
    worker: bool = False,
) -> Iterator[intake.Outcome]:
    """``odd17 submit``: each batch stored and judged in one transaction, its outcomes yielded
    as soon as it is committed (the caller streams them out: nothing grows with the input).
    ``policy`` defaults to the fund's; ``worker``: see ``intake.submit_stream``."""
    policy = policy or runner.context.config.policy()
    for outcomes in intake.submit_stream(runner, raws, batch_size=batch_size, policy=policy,
                                         language=language, worker=worker):
        yield from outcomes
        if progress:
            progress(len(outcomes))
    # Then whatever the intake flow or an interrupted run left waiting in ``submitted`` (its
    # duplicates among these documents were judged in their batch already).
    evaluate_references(runner, None, policy, batch_size=batch_size)


def evaluate_references(
    runner: Runner,
    references: list[str] | None,
    policy: EligibilityPolicy | None = None,
    *,
    batch_size: int,
    reevaluate: bool = False,
) -> list[eligibility.Verdict]:
    """Evaluate the named applications (``None``: every pending one, or with ``reevaluate``
    every one not yet in review), one transaction per batch."""
    if references is not None and not references:
        return []
    policy = policy or runner.context.config.policy()
    verdicts: list[eligibility.Verdict] = []
    if references is None:
        cursor: int | None = 0
        while cursor is not None:
            with runner.uow() as uow:
                part, cursor = eligibility.evaluate_next(
                    uow, policy, after_id=cursor, limit=batch_size, reevaluate=reevaluate)
            verdicts.extend(part)
        return verdicts
    ids: list[int] = []
    for chunk in batches(references, 500):
        with runner.uow() as uow:
            ids += eligibility.candidate_ids(uow, references=chunk, reevaluate=reevaluate)
    for batch in batches(ids, batch_size):
        with runner.uow() as uow:
            verdicts.extend(eligibility.evaluate_batch(uow, batch, policy,
                                                       reevaluate=reevaluate))
    return verdicts
