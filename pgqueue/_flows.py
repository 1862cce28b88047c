"""Flows once enqueued: ``FlowHandle`` (wait, status, cancel) and ``app.get_flow``.

A flow is the set of jobs sharing a ``flow_id`` (the id of its first job).
Its *tails* are the jobs no other job of the flow waits for; their results
are the flow's. Reads are operations (generators of statements, see ``_db``),
driven sync or async; waiting listens on ``pgqueue_done`` like ``job.wait()``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pgqueue import _admin
from pgqueue._core import FINISHED
from pgqueue._db import Operation, Statement
from pgqueue._errors import FlowNotFound, JobFailed, WaitTimeout
from pgqueue._job import Job
from pgqueue._keys import DONE_CHANNEL
from pgqueue._sql import query

if TYPE_CHECKING:
    from pgqueue._db import Database
    from pgqueue._protocols import JobOwner

RECHECK = 1.0  # seconds: re-read at least this often, in case a notification was missed


def tails_of(jobs: Sequence[Job]) -> list[int]:
    """The ids of the jobs no other job of ``jobs`` depends on, in order."""
    parents = {p for j in jobs for p in (j.parent_ids or ())}
    return [j.id for j in jobs if j.id not in parents]


class FlowHandle:
    """An enqueued flow: ``id``, its ``jobs`` (as enqueued, or as last read)."""

    __module__ = "pgqueue"

    def __init__(
        self,
        jobs: list[Job],
        tails: list[int],
        database: Database,
        owner: JobOwner,
    ) -> None:
        self.id: int = (jobs[0].flow_id or jobs[0].id) if jobs else 0
        self.jobs = jobs
        self.tails = tails
        self._database = database
        self._owner = owner

    def __repr__(self) -> str:
        return f"<pgqueue.FlowHandle id={self.id} jobs={len(self.jobs)}>"

    def refresh(self) -> FlowHandle:
        """The flow re-read from the database (a new handle)."""
        return self._database.run(get_flow(self._database, self._owner, self.id))

    async def refresh_async(self) -> FlowHandle:
        return await self._database.run_async(get_flow(self._database, self._owner, self.id))

    def counts(self) -> dict[str, int]:
        """How many of the flow's jobs are in each status."""
        return self._database.run(flow_counts(self.id))

    async def counts_async(self) -> dict[str, int]:
        return await self._database.run_async(flow_counts(self.id))

    def status(self) -> str:
        """``running`` while any job is unfinished, else ``succeeded`` (all did),
        ``failed`` (some job ended dead) or ``cancelled``."""
        return summary(self.counts())

    async def status_async(self) -> str:
        return summary(await self.counts_async())

    def cancel(self) -> dict[str, list[int]]:
        """Cancel every unfinished job of the flow (running ones are asked to stop),
        as ``app.cancel_jobs`` does: ``{"cancelled": ids, "requested": ids}``."""
        return self._database.run(cancel_flow(self.id))

    async def cancel_async(self) -> dict[str, list[int]]:
        return await self._database.run_async(cancel_flow(self.id))

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the flow's tails finish; return their result (a list when
        there are several). ``JobFailed`` names the first job of the flow that
        ended dead (else cancelled), if any did; ``WaitTimeout`` after ``timeout``."""
        if all(j.finished for j in self.jobs):  # known already (eager mode: ran inline)
            return settled(self.jobs, self.tails)
        deadline = None if timeout is None else time.monotonic() + timeout
        left = set(self.tails)
        with self._database.connect() as conn:
            conn.execute(f"LISTEN {DONE_CHANNEL}")
            while True:
                rows = conn.execute(query("job_states"), {"ids": sorted(left)}).fetchall()
                left = _unfinished(left, rows)
                if not left:
                    return self._database.run(outcome(self._owner, self.id, self.tails))
                pause = _pause(deadline, timeout, self.id)
                for note in conn.notifies(timeout=pause, stop_after=1):
                    if _mentions(note.payload, left):
                        break

    async def wait_async(self, timeout: float | None = None) -> Any:
        if all(j.finished for j in self.jobs):
            return settled(self.jobs, self.tails)
        deadline = None if timeout is None else time.monotonic() + timeout
        left = set(self.tails)
        async with await self._database.connect_async() as aconn:
            await aconn.execute(f"LISTEN {DONE_CHANNEL}")
            while True:
                cur = await aconn.execute(query("job_states"), {"ids": sorted(left)})
                left = _unfinished(left, await cur.fetchall())
                if not left:
                    op = outcome(self._owner, self.id, self.tails)
                    return await self._database.run_async(op)
                pause = _pause(deadline, timeout, self.id)
                async for note in aconn.notifies(timeout=pause, stop_after=1):
                    if _mentions(note.payload, left):
                        break


def _unfinished(left: set[int], rows: Sequence[tuple[Any, ...]]) -> set[int]:
    # A job that vanished (purged) counts as finished: nothing will change it.
    return {r[0] for r in rows if r[1] not in FINISHED} & left


def _pause(deadline: float | None, timeout: float | None, flow_id: int) -> float:
    if deadline is None:
        return RECHECK
    left = deadline - time.monotonic()
    if left <= 0:
        raise WaitTimeout(f"flow {flow_id} still unfinished after {timeout}s")
    return min(RECHECK, left)


def _mentions(payload: str, ids: set[int]) -> bool:
    return any(int(p) in ids for p in payload.split(",") if p.isdigit())


def summary(counts: dict[str, int]) -> str:
    if any(status not in FINISHED for status in counts):
        return "running"
    if counts.get("dead"):
        return "failed"
    if counts.get("cancelled"):
        return "cancelled"
    return "succeeded"


def get_flow(database: Database, owner: JobOwner, flow_id: int) -> Operation[FlowHandle]:
    rows = yield Statement(query("flow_jobs"), {"flow_id": flow_id})
    if not rows:
        raise FlowNotFound(f"no flow with id {flow_id}")
    jobs = [Job.from_row(r, owner) for r in rows]
    return FlowHandle(jobs, tails_of(jobs), database, owner)


def children(owner: JobOwner, job_id: int) -> Operation[list[Job]]:
    """The jobs that depend on ``job_id`` (``Job.parent_ids`` gives the other way)."""
    rows = yield Statement(query("job_children"), {"id": job_id})
    return [Job.from_row(r, owner) for r in rows]


def flow_counts(flow_id: int) -> Operation[dict[str, int]]:
    rows = yield Statement(query("flow_counts"), {"flow_id": flow_id})
    if not rows:
        raise FlowNotFound(f"no flow with id {flow_id}")
    return {status: count for status, count in rows}


def cancel_flow(flow_id: int) -> Operation[dict[str, list[int]]]:
    rows = yield Statement(query("flow_unfinished"), {"flow_id": flow_id})
    if not rows:
        return {"cancelled": [], "requested": []}
    return (yield from _admin.cancel_jobs([r[0] for r in rows]))


def outcome(owner: JobOwner, flow_id: int, tails: Sequence[int]) -> Operation[Any]:
    """The tails' result, or JobFailed for the job that failed the flow."""
    failed = yield Statement(query("flow_root_failure"), {"flow_id": flow_id})
    if failed:
        raise JobFailed(Job.from_row(failed[0], owner))
    rows = yield Statement(query("flow_jobs"), {"flow_id": flow_id})
    return settled([Job.from_row(r, owner) for r in rows], tails)


def settled(jobs: Sequence[Job], tails: Sequence[int]) -> Any:
    """The outcome of finished ``jobs``: JobFailed for the first dead one (else
    the first cancelled), or the tails' result (a list when there are several)."""
    for bad in ("dead", "cancelled"):
        failed = next((j for j in jobs if j.status == bad), None)
        if failed is not None:
            raise JobFailed(failed)
    by_id = {j.id: j for j in jobs}
    results = [by_id[i].result for i in tails if i in by_id]
    return results[0] if len(results) == 1 else results
