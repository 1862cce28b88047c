"""Enqueue with dependencies: link a batch, plan its rows, write them.

A batch in which some job depends on another (``depends_on``, or a flow built
by ``pgqueue.chain``/``group``/``chord``) always takes the COPY path, because
the rows' ids must be known before they are written: a child's row names its
parents' ids (``parent_ids``) and the edges (``pgqueue.job_dependencies``)
name both ends. So:

1. ``link`` (before the enqueue middleware, which may copy specs) turns every
   parent that is a spec of the same batch into ``SpecRef(position)``; a spec
   that is not *earlier* in the batch is a ``DependencyError``. Cycles are
   impossible: a job can only depend on existing jobs and earlier ones.
2. ``enqueue_linked_prelude`` (one statement) takes ids from the sequence,
   checks ``max_depth``, queues the wake-ups, and locks the existing parents
   (``UPDATE … SET has_dependents = true``), returning their state as of the
   lock: a parent that finishes while this transaction is open waits for its
   commit, then releases the children (see the trigger in migration 0004).
   That lock is the price of depending on a job that is already running: its
   completion (and its heartbeat) wait for the enqueuing transaction to commit.
3. ``plan`` computes each row's status in batch order: ``blocked`` with its
   ``pending_parents`` while some parent is unfinished; ``queued`` when all
   succeeded; for a parent already dead or cancelled, ``cancelled`` (naming it)
   or, for ``on_parent_failure="run"``, as if it had finished.
4. COPY the rows, then insert the edges (one statement).

Unique keys are not supported in such a batch yet (COPY cannot skip a row whose
key is held, and a child would not know which job to wait for).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.copy import QueuedLibpqWriter
from psycopg.rows import tuple_row

from pgqueue._bulk import gc_paused, run_at
from pgqueue._canvas import Node, flatten
from pgqueue._client import _transaction, queue_full
from pgqueue._core import DEFAULT_MAX_PAYLOAD, JobSpec, SpecRef, dumps, encode_json
from pgqueue._errors import DependencyError
from pgqueue._job import Job, inserted_row
from pgqueue._sql import query

if TYPE_CHECKING:
    from pgqueue._protocols import JobOwner

Row = tuple[Any, ...]
FAILED = ("dead", "cancelled")
PASSING = ("previous", "list")


def has_links(specs: Sequence[JobSpec]) -> bool:
    """Whether the batch needs the dependency path (or ``link`` to refuse it)."""
    return any(s.depends_on or s.needs_result is not None for s in specs)


def flow_specs(flow: Node) -> tuple[list[JobSpec], list[int]]:
    """A flow's linked specs and the positions of its tails (``_canvas.flatten``)."""
    with gc_paused():
        specs, tails = flatten(flow)
        return link(specs), tails


def link(specs: Sequence[JobSpec]) -> list[JobSpec]:
    """The batch with spec parents as ``SpecRef`` positions, duplicates dropped.

    Raises before any I/O: ``DependencyError`` for a parent spec that is not
    earlier in the batch, ``TypeError`` for a step that needs its parent's
    result and gets none, ``ValueError`` for a unique key in such a batch.
    """
    with gc_paused():  # one object or two per job: see _bulk.gc_paused
        return _link(specs)


def _link(specs: Sequence[JobSpec]) -> list[JobSpec]:
    positions: dict[int, int] = {}  # id(spec) -> its position; -1: given twice
    out: list[JobSpec] = []
    for i, spec in enumerate(specs):
        if spec.unique_key is not None:
            raise ValueError(
                f"job of {spec.task}: unique keys are not supported in a batch with"
                " dependencies yet"
            )
        deps = _resolve(spec, i, positions) if spec.depends_on else ()
        mode = spec.pass_result
        if deps:
            mode = mode or "none"
            if mode == "previous" and len(deps) != 1:
                raise DependencyError(
                    f"job of {spec.task}: pass_result='previous' needs exactly one parent"
                    f" (it has {len(deps)}); 'list' passes every parent's result"
                )
        else:
            mode = None
        if spec.needs_result is not None and mode not in PASSING:
            raise TypeError(spec.needs_result)
        positions[id(spec)] = -1 if id(spec) in positions else i
        same = deps == spec.depends_on and mode == spec.pass_result
        out.append(spec if same else spec.linked(deps, mode))
    return out


def _resolve(spec: JobSpec, index: int, positions: dict[int, int]) -> tuple[Any, ...]:
    out: list[Any] = []
    seen: set[Any] = set()  # a chord's callback has as many parents as its header has jobs
    for parent in spec.depends_on:
        if isinstance(parent, JobSpec):
            pos = positions.get(id(parent))
            if pos is None:
                raise DependencyError(
                    f"a job of {spec.task} depends on a job of {parent.task} that is not"
                    " earlier in the same batch (enqueue it first, or put it before)"
                )
            if pos < 0:
                raise DependencyError(
                    f"a job of {spec.task} depends on a job spec of {parent.task} that"
                    " appears twice in the batch"
                )
            parent = SpecRef(pos)
        elif isinstance(parent, SpecRef) and not 0 <= parent.pos < index:
            raise DependencyError(f"job of {spec.task}: {parent} is not earlier in the batch")
        if parent not in seen:
            seen.add(parent)
            out.append(parent)
    return tuple(out)


@dataclass
class LinkedBatch:
    """A linked batch, encoded, with the prelude's parameters."""

    specs: Sequence[JobSpec]
    params: dict[str, Any]
    encoded: list[tuple[str, str, str]]
    flow: bool  # a flow: every job gets flow_id = the id of its first job


def prepare(
    specs: Sequence[JobSpec], *, flow: bool = False, max_payload: int = DEFAULT_MAX_PAYLOAD
) -> LinkedBatch:
    """Encode every job (TypeError/ValueError before any I/O) and count the queues.

    A queue is woken only for jobs that may be ready at once: those without a
    parent in the batch (a job whose parents all exist and succeeded is queued).
    """
    encoded: list[tuple[str, str, str]] = []
    queues: dict[str, list[Any]] = {}  # name -> [count, any due now, earliest run_at]
    parents: set[int] = set()
    with gc_paused():
        for s in specs:
            encoded.append(encode_json(s, max_payload))
            q = queues.get(s.queue)
            if q is None:
                q = queues[s.queue] = [0, False, None]
            q[0] += 1
            inner = False
            for p in s.depends_on:
                if isinstance(p, SpecRef):
                    inner = True
                else:
                    parents.add(p)
            if inner:
                continue
            if s.run_at is not None:
                q[2] = s.run_at if q[2] is None else min(q[2], s.run_at)
            elif not s.delay:
                q[1] = True
    params = {
        "queues": list(queues),
        "counts": [q[0] for q in queues.values()],
        "due": [q[1] for q in queues.values()],
        "earliest": [q[2] for q in queues.values()],
        "n": len(specs),
        "force": False,
        "parents": sorted(parents),
    }
    return LinkedBatch(specs, params, encoded, flow)


def plan(
    batch: LinkedBatch,
    ids: Sequence[int],
    now: datetime,
    found: dict[int, tuple[str, str]],
    owner: JobOwner | None,
) -> tuple[list[Row], dict[str, str], list[Job]]:
    """The COPY rows, the edges (``enqueue_edges`` parameters) and the ``Job``
    values, given the prelude's ids and the existing parents' (status, task);
    DependencyError for a missing one. Straight-line code: one pass per job."""
    missing = [p for p in batch.params["parents"] if p not in found]
    if missing:
        listed = ", ".join(map(str, missing[:10]))
        raise DependencyError(f"depends_on names job {listed}, which does not exist")
    specs = batch.specs
    has_dependents = [False] * len(specs)
    for s in specs:
        for p in s.depends_on:
            if type(p) is SpecRef:
                has_dependents[p.pos] = True
    flow_id = ids[0] if batch.flow and ids else None
    states: list[str] = []
    rows: list[Row] = []
    edge_parents: list[int] = []
    edge_children: list[int] = []
    jobs: list[Job] = []
    from_row = Job.from_row
    for i, (s, (a, k, m)) in enumerate(zip(specs, batch.encoded, strict=True)):
        job_id = ids[i]
        due = run_at(s, now)
        if not s.depends_on:
            states.append("queued")
            rows.append((job_id, s.queue, s.task, a, k, s.priority, due, s.max_attempts, m,
                         "queued", flow_id, None, 0, None, None, has_dependents[i], None,
                         None, "[]"))  # fmt: skip
            jobs.append(from_row((*inserted_row(s, job_id, due, now), flow_id, None), owner))
            continue
        parent_ids: list[int] = []
        pending = 0
        failed: tuple[int, str, str] | None = None
        for p in s.depends_on:
            if type(p) is SpecRef:
                pid, state = ids[p.pos], states[p.pos]
            else:
                pid, state = p, found[p][0]
            parent_ids.append(pid)
            if state in FAILED:
                if failed is None and s.on_parent_failure == "cancel":
                    task = specs[p.pos].task if type(p) is SpecRef else found[p][1]
                    failed = (pid, task, state)
            elif state != "succeeded":
                pending += 1
        edge_parents += parent_ids
        edge_children += [job_id] * len(parent_ids)
        status, finished, error, errors = "queued", None, None, []
        if failed is not None:
            status, finished = "cancelled", now
            error = f"ParentFailed: parent job {failed[0]} ({failed[1]}) ended {failed[2]}"
            errors = [{"attempt": 0, "at": now.isoformat(), "type": "pgqueue.ParentFailed",
                       "parent": failed[0], "error": error}]  # fmt: skip
        elif pending:
            status = "blocked"
        states.append(status)
        rows.append((
            job_id, s.queue, s.task, a, k, s.priority, due, s.max_attempts, m, status, flow_id,
            _array(parent_ids), pending, s.on_parent_failure, s.pass_result, has_dependents[i],
            finished, error, dumps(errors, "errors") if errors else "[]",
        ))  # fmt: skip
        job = from_row((*inserted_row(s, job_id, due, now, status), flow_id, parent_ids), owner)
        job.finished_at, job.last_error, job.errors = finished, error, errors
        jobs.append(job)
    edges = {"parents": _array(edge_parents), "children": _array(edge_children)}
    return rows, edges, jobs


def _array(ids: Sequence[int]) -> str:
    """A bigint[] as text (COPY, parameters): psycopg would dump a list element by element."""
    return "{" + ",".join(map(str, ids)) + "}"


def _prelude(row: Row | None) -> tuple[list[int], datetime, dict[int, tuple[str, str]]]:
    assert row is not None
    now, full, ids, _woken, pids, statuses, tasks = row
    if full:
        raise queue_full(full)
    found = dict(zip(pids or (), zip(statuses or (), tasks or (), strict=True), strict=True))
    return sorted(ids), now, found


def enqueue_linked_sync(
    conn: psycopg.Connection[Any], batch: LinkedBatch, owner: JobOwner
) -> list[Job]:
    with _transaction(conn), conn.cursor(row_factory=tuple_row) as cur:
        ids, now, found = _prelude(
            cur.execute(query("enqueue_linked_prelude"), batch.params).fetchone()
        )
        with gc_paused():
            rows, edges, jobs = plan(batch, ids, now, found, owner)
        writer = QueuedLibpqWriter(cur)
        with cur.copy(query("enqueue_copy_linked"), writer=writer) as cp:
            for row in rows:
                cp.write_row(row)
        if edges["parents"] != "{}":
            cur.execute(query("enqueue_edges"), edges, prepare=False)
    return jobs


async def enqueue_linked_async(
    conn: psycopg.AsyncConnection[Any], batch: LinkedBatch, owner: JobOwner
) -> list[Job]:
    async with _transaction(conn), conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(query("enqueue_linked_prelude"), batch.params)
        ids, now, found = _prelude(await cur.fetchone())
        with gc_paused():
            rows, edges, jobs = plan(batch, ids, now, found, owner)
        async with cur.copy(query("enqueue_copy_linked")) as cp:
            for row in rows:
                await cp.write_row(row)
        if edges["parents"] != "{}":
            await cur.execute(query("enqueue_edges"), edges, prepare=False)
    return jobs
