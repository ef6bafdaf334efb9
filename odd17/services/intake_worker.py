"""``odd17 submit`` on two cores: a worker process reads, validates and judges the documents
(odd17.services.intake_prepare) while this process stores the batch before.

On 10,000 documents, reading, validating and judging are about half of the time; writing the
other half. The worker sends plain values (``Prepared``), a batch at a time, at most
``AHEAD`` batches ahead, so memory stays bounded by the batch size. It is forked (it inherits
the imports, the policy and the snapshot of the calls: nothing to re-import nor to pickle
on the way in) and never touches the database: the connections it inherits are left alone
(closing them there would affect the parent's), and a forked worker ends with ``os._exit``,
which finalises nothing.

If the worker dies, the documents it had not handed over are read again here and prepared
in this process: nothing read is lost, and what was stored stays stored. If this process
dies, the worker ends within ``ORPHAN_POLL_SECONDS``."""

from __future__ import annotations

import gc
import itertools
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING

from odd17.services.batching import chunked, gc_paused
from odd17.services.intake_prepare import Prepared, Refused, Snapshot, prepare_batch

if TYPE_CHECKING:
    from odd17.services.intake import Documents

AHEAD = 2  # batches asked of the worker before the one being stored is done
ORPHAN_POLL_SECONDS = 0.5

Batch = list[Prepared | Refused]
_batches: Iterator[Batch] | None = None  # the worker's own stream


def _start(documents: Documents, batch_size: int, snapshot: Snapshot | None,
           language: str) -> None:
    """In the worker: its stream of prepared batches (generators are not picklable, so the
    stream lives in the process and each call asks for its next batch)."""
    global _batches
    # Ctrl-C reaches the whole process group: the parent stops the worker (shutdown); the
    # worker itself would only print a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A parent killed outright (SIGKILL) never says so: the worker, which holds both ends
    # of the pool's pipes, would wait for work forever. It watches for its parent's end.
    parent = os.getppid()

    def orphaned() -> None:
        while os.getppid() == parent:
            time.sleep(ORPHAN_POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=orphaned, name="odd17-worker-orphaned", daemon=True).start()

    def stream() -> Iterator[Batch]:
        for raws in chunked(iter(documents), batch_size):
            # yielded inside the pause: the batch is pickled and dropped before the
            # collector resumes (see intake.submit_stream)
            with gc_paused():
                yield prepare_batch(raws, language, snapshot, keep_dump=False)

    _batches = stream()


def _next() -> Batch | None:
    assert _batches is not None
    return next(_batches, None)


def prepared_batches(documents: Documents, *, batch_size: int, snapshot: Snapshot | None,
                     language: str) -> Iterator[Batch]:
    """The documents, prepared in batches of ``batch_size`` by a worker process, in order."""
    handed = 0  # documents handed on
    gc.freeze()  # what exists now stays out of both processes' collections (and shared)
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"),
                               initializer=_start,
                               initargs=(documents, batch_size, snapshot, language))
    try:
        asked: deque[Future[Batch | None]] = deque()
        while True:
            try:
                while len(asked) < AHEAD:
                    asked.append(pool.submit(_next))
                batch = asked.popleft().result()
            except BrokenProcessPool:  # at submit too: the pool may learn it between two
                break
            if batch is None:
                return
            handed += len(batch)
            yield batch
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        gc.unfreeze()
    # The worker died: the rest is read and prepared here.
    rest = itertools.islice(iter(documents), handed, None)
    for raws in chunked(rest, batch_size):
        with gc_paused():
            yield prepare_batch(raws, language, snapshot)
