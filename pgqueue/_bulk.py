"""Bulk enqueue: the I/O-free half (which path, its parameters, its rows).

A batch without unique keys goes in by COPY: a short prelude statement in the
same transaction takes ids from the jobs' sequence, reads the transaction's
``now()`` (the rows' ``created_at``), checks ``max_depth`` and queues one
NOTIFY per ready queue; then COPY writes the rows. COPY cannot skip a row on
a unique-key conflict, so a batch with unique keys (and a small batch, where
two statements cost more than the JSON one) takes the ``enqueue`` statement.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pgqueue._core import DEFAULT_MAX_PAYLOAD, JobSpec, encode_json, enqueue_params
from pgqueue._job import Job, inserted_row

if TYPE_CHECKING:
    from pgqueue._protocols import JobOwner

COPY_MIN = 64  # below this many jobs the one-statement JSON path is faster

Row = tuple[Any, ...]


@dataclass
class Batch:
    """A prepared ``enqueue_many``: ``copy`` False means the ``enqueue`` statement."""

    specs: Sequence[JobSpec]
    copy: bool
    params: dict[str, Any]  # the prelude's (COPY) or the ``enqueue`` statement's
    encoded: list[tuple[str, str, str]]  # args, kwargs, meta as JSON (COPY only)
    timed: bool = False  # some job has its own run_at or delay: COPY writes run_at

    @property
    def copy_query(self) -> str:
        return "enqueue_copy_timed" if self.timed else "enqueue_copy"

    def rows(
        self, ids: Sequence[int], now: datetime, owner: JobOwner | None, jobs: list[Job]
    ) -> Iterator[Row]:
        """The COPY rows, in ``copy_query``'s column order.

        Each row's ``Job`` (as ``enqueue`` returns it; kwargs and meta are the
        spec's own mappings, as for a single enqueue) is appended to ``jobs``
        as the row goes out: Python builds them while the server is still
        reading the COPY on the other core. Run under ``gc_paused()``.
        """
        timed = self.timed
        append = jobs.append
        for s, (a, k, m), i in zip(self.specs, self.encoded, ids, strict=True):
            due = run_at(s, now) if timed else now
            append(Job.from_row(inserted_row(s, i, due, now), owner))
            if timed:
                yield (i, s.queue, s.task, a, k, s.priority, due, s.max_attempts, m)
            else:
                yield (i, s.queue, s.task, a, k, s.priority, s.max_attempts, m)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic GC while building one object per job: none of them form cycles,
    and with 100,000 of them each collection would rescan all the earlier ones
    (a third of a bulk enqueue's time, measured)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def run_at(spec: JobSpec, now: datetime) -> datetime:
    """When a job becomes due: ``coalesce(run_at, now() + delay)``, as the SQL does."""
    if spec.run_at is not None:
        return spec.run_at
    return now + timedelta(seconds=spec.delay) if spec.delay else now


def prepare(
    specs: Sequence[JobSpec], *, force: bool = False, max_payload: int = DEFAULT_MAX_PAYLOAD
) -> Batch:
    """Choose the path and encode every value; TypeError on non-JSON, ValueError over
    ``max_payload``, before any I/O."""
    if len(specs) < COPY_MIN or any(s.unique_key is not None for s in specs):
        return Batch(specs, False, enqueue_params(specs, force=force, max_payload=max_payload), [])
    with gc_paused():
        return _prepare_copy(specs, force, max_payload)


def _prepare_copy(specs: Sequence[JobSpec], force: bool, max_payload: int) -> Batch:
    encoded: list[tuple[str, str, str]] = []
    queues: dict[str, list[Any]] = {}  # name -> [count, any due now, earliest run_at]
    timed = False
    for s in specs:
        encoded.append(encode_json(s, max_payload))
        q = queues.get(s.queue)
        if q is None:
            q = queues[s.queue] = [0, False, None]
        q[0] += 1
        if s.run_at is not None:
            timed = True
            q[2] = s.run_at if q[2] is None else min(q[2], s.run_at)
        elif s.delay:
            timed = True
        else:
            q[1] = True
    params = {
        "queues": list(queues),
        "counts": [q[0] for q in queues.values()],
        "due": [q[1] for q in queues.values()],
        "earliest": [q[2] for q in queues.values()],
        "n": len(specs),
        "force": force,
    }
    return Batch(specs, True, params, encoded, timed)
