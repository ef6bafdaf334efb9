"""Intake (README « For the applicant »; docs/architecture.md): read documents, validate them,
store the well-formed ones, and with a policy judge their eligibility in the same pass.

Documents are read as a stream (one line at a time) and handled in batches: each batch is
prepared (validated, and judged against the calls as last read: odd17.services.intake_prepare)
before any transaction, then stored in one transaction of its own (odd17.services.intake_store),
and its outcomes handed on before the next batch is read, so memory is bounded by the batch, not
by the files. ``odd17 submit`` prepares the next batches in a worker process while this one
stores (odd17.services.intake_worker). Each document is judged alone: one bad one never costs
the others, and a batch is either stored whole or not at all."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from odd17.services import sources
from odd17.services.batching import chunked, gc_paused
from odd17.services.intake_prepare import (
    DEDUP_KEY_LENGTH,
    Prepared,
    Refused,
    Snapshot,
    fit_key,
    msg,
    overflow,
    prepare_batch,
    validate,
)
from odd17.services.intake_store import Outcome, call_dates, reference_for, store_documents
from odd17.uow import Runner
from rules.eligibility import EligibilityPolicy

__all__ = ["DEDUP_KEY_LENGTH", "Documents", "Outcome", "RawDocument", "Tally", "fit_key",
           "iter_documents", "overflow", "read_sources", "reference_for", "store_documents",
           "submit_documents", "submit_stream", "validate"]

SUFFIXES = (".json", ".jsonl")
RawDocument = sources.Record  # one document as read: parsed JSON, or why it could not be


class Tally:
    """Counts of a run of intake, kept small (a flow returns this, not 10,000 outcomes).
    A plain class on purpose: Prefect walks lists, dicts and dataclasses it is handed."""

    def __init__(self) -> None:
        self.received = 0
        self.duplicates = 0
        self.created: list[str] = []
        self.refused: list[dict[str, Any]] = []
        self.eligible = 0  # verdicts among the new applications (judged in the same pass)
        self.ineligible = 0
        self.failing: dict[str, int] = {}

    @classmethod
    def of(cls, outcomes: Iterable[Outcome]) -> Tally:
        tally = cls()
        for o in outcomes:
            tally.received += 1
            if o.status == "refused":
                tally.refused.append({"source": o.source, "errors": o.errors})
            elif o.duplicate:
                tally.duplicates += 1
            else:
                tally.created.append(o.reference or "")
                tally.eligible += o.status == "eligible"
                tally.ineligible += o.status == "ineligible"
                for rule in o.failing:
                    tally.failing[rule] = tally.failing.get(rule, 0) + 1
        return tally

    def add(self, other: Tally) -> None:
        self.received += other.received
        self.duplicates += other.duplicates
        self.created.extend(other.created)
        self.refused.extend(other.refused)
        self.eligible += other.eligible
        self.ineligible += other.ineligible
        for rule, n in other.failing.items():
            self.failing[rule] = self.failing.get(rule, 0) + n

    def summary(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "created": len(self.created),
            "duplicates": self.duplicates,
            "refused": self.refused,
            "eligible": self.eligible,
            "ineligible": self.ineligible,
            "failing_by_rule": dict(sorted(self.failing.items())),
            "first_reference": self.created[0] if self.created else None,
            "last_reference": self.created[-1] if self.created else None,
        }


def _file_error(source: str, fr: str, en: str, language: str) -> RawDocument:
    return RawDocument(source, error=msg(language, fr, en))


def iter_files(paths: Iterable[str | Path], language: str = "fr") -> Iterator[Path | RawDocument]:
    """Files to read, in a stable order; folders are walked for .json and .jsonl files. A path
    that cannot be used yields a RawDocument carrying the reason instead."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file())
            if not found:
                yield _file_error(str(path), "dossier sans fichier .json ni .jsonl",
                                  "folder holds no .json or .jsonl file", language)
            yield from found
        elif not path.exists():
            yield _file_error(str(path), "fichier introuvable", "no such file", language)
        elif path.suffix not in SUFFIXES:
            yield _file_error(str(path), "extension non prise en charge (attendu .json ou .jsonl)",
                              "unsupported extension (expected .json or .jsonl)", language)
        else:
            yield path


def read_file(path: Path, language: str = "fr") -> Iterator[RawDocument]:
    """The documents of one file as they are read, each judged alone (odd17.services.sources):
    a ``.jsonl`` file line by line; a ``.json`` file holds one document."""
    try:
        with path.open("rb") as stream:
            if path.suffix == ".json":
                yield sources.json_document(path, stream.read(), language)
            else:
                yield from sources.iter_json_lines(path, stream, language)
    except OSError:
        yield _file_error(str(path), "lecture impossible", "cannot read", language)


def iter_documents(paths: Iterable[str | Path], language: str = "fr") -> Iterator[RawDocument]:
    """Every document of ``paths``, in a stable order, as a stream."""
    for item in iter_files(paths, language):
        if isinstance(item, Path):
            yield from read_file(item, language)
        else:
            yield item


def read_sources(paths: Iterable[str | Path], language: str = "fr") -> list[RawDocument]:
    """The same, as a list (the ``intake`` flow, whose tasks take batches)."""
    with gc_paused():
        return list(iter_documents(paths, language))


def count_documents(paths: Iterable[str | Path], stop_above: int | None = None) -> int:
    """How many documents ``paths`` hold, roughly (non-blank lines), for a progress bar:
    counted in 1 MiB blocks, without parsing; with ``stop_above``, the count stops (at some
    number above it) once it is passed."""
    total = 0
    for item in iter_files(paths):
        if not isinstance(item, Path) or item.suffix == ".json":
            total += 1
            continue
        try:
            with item.open("rb") as stream:
                tail = b"\n"
                while block := stream.read(1 << 20):
                    total += block.count(b"\n")
                    tail = block[-1:]
                    if stop_above is not None and total > stop_above:
                        return total
                total += tail != b"\n"
        except OSError:
            total += 1
        if stop_above is not None and total > stop_above:
            return total
    return total


@dataclass(frozen=True, slots=True)
class Documents:
    """The documents of files, as a stream (``iter``) that another process can read too:
    ``odd17 submit`` hands it to :func:`submit_stream`, which may prepare its documents in a
    worker process (odd17.services.intake_worker)."""

    paths: tuple[Path, ...]
    language: str = "fr"

    def __iter__(self) -> Iterator[RawDocument]:
        return iter_documents(self.paths, self.language)

    def more_than(self, count: int) -> bool:
        """Whether the files hold more than ``count`` documents (lines counted, not parsed)."""
        return count_documents(self.paths, stop_above=count) > count


def _outcomes(runner: Runner, prepared: list[Prepared | Refused], *,
              policy: EligibilityPolicy | None, language: str) -> list[Outcome]:
    """Store one prepared batch in one transaction of its own; the refused ones reported,
    never stored. One outcome per document, in order."""
    outcomes: list[Outcome | None] = [None] * len(prepared)
    valid: list[tuple[int, Prepared]] = []
    for i, item in enumerate(prepared):
        if isinstance(item, Refused):
            outcomes[i] = Outcome(item.source, None, "refused", item.errors)
        else:
            valid.append((i, item))
    if valid:
        with runner.uow() as uow:
            stored = store_documents(uow, [item for _, item in valid], policy=policy,
                                     language=language)
        for (i, _), outcome in zip(valid, stored, strict=True):
            outcomes[i] = outcome
    return [o for o in outcomes if o is not None]


def submit_documents(
    runner: Runner,
    raws: list[RawDocument],
    *,
    policy: EligibilityPolicy | None = None,
    language: str = "fr",
) -> list[Outcome]:
    """Validate then store one batch in one transaction of its own; refused documents are
    reported, never stored, and never stop the others. With ``policy``, new applications are
    judged in the same pass (``odd17 submit``); without, they wait in ``submitted`` (the
    ``intake`` flow). Returns one outcome per document, in input order."""
    with gc_paused():
        return _outcomes(runner, prepare_batch(raws, language), policy=policy,
                         language=language)


def snapshot(runner: Runner, policy: EligibilityPolicy) -> Snapshot:
    """The calls and the day, read now, to judge documents with ahead of their transaction."""
    with runner.uow() as uow:
        calls, day = call_dates(uow.session), uow.now.date()
    return Snapshot(calls, day, policy, policy.digest())


def submit_stream(
    runner: Runner,
    raws: Iterable[RawDocument],
    *,
    batch_size: int,
    policy: EligibilityPolicy | None = None,
    language: str = "fr",
    worker: bool = False,
) -> Iterator[list[Outcome]]:
    """:func:`submit_documents` over a stream, batch by batch: each batch's outcomes are
    yielded once it is committed, before the next one is read. With ``worker``, and
    ``raws`` files (:class:`Documents`) of more than one batch, the documents are read,
    validated and judged in a second process while this one stores the batch before
    (odd17.services.intake_worker)."""
    if worker and isinstance(raws, Documents) and raws.more_than(batch_size):
        from odd17.services import intake_worker

        ahead = snapshot(runner, policy) if policy is not None else None
        for prepared in intake_worker.prepared_batches(raws, batch_size=batch_size,
                                                       snapshot=ahead, language=language):
            with gc_paused():
                outcomes = _outcomes(runner, prepared, policy=policy, language=language)
                del prepared
            yield outcomes
        return
    stream = iter(raws)
    while True:
        # One pause for reading and storing a batch, which is dropped before the collector
        # resumes: resuming with the batch alive made it scan the batch's objects (~6 % of
        # the time). What the batch allocated is freed by reference counting meanwhile.
        with gc_paused():
            batch = next(chunked(stream, batch_size), None)
            if batch is None:
                return
            outcomes = submit_documents(runner, batch, policy=policy, language=language)
            del batch
        yield outcomes
