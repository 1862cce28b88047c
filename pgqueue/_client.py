"""Enqueue and inspect: one statement builder, thin sync and async runners."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.copy import QueuedLibpqWriter
from psycopg.pq import TransactionStatus
from psycopg.rows import tuple_row

from pgqueue._bulk import Batch, gc_paused
from pgqueue._core import FINISHED, JobSpec, holder_params, match_inserted
from pgqueue._errors import PgQueueError, QueueFull
from pgqueue._job import Job, inserted_row
from pgqueue._sql import query

if TYPE_CHECKING:
    from pgqueue._protocols import JobOwner

Row = tuple[Any, ...]


def job_row(spec: JobSpec, ins: Row) -> Row:
    """A full job row from a spec and its ``enqueue`` result."""
    job_id, unique_key, status, run_at, created_at = ins[:5]
    return inserted_row(spec, job_id, run_at, created_at, status, unique_key)


def _holders(rows: Sequence[Row]) -> dict[int, Row]:
    """``jobs_by_unique_key`` rows by their position in the lookup (a job row each)."""
    return {row[-1]: row[:-1] for row in rows}


def _assemble(
    specs: Sequence[JobSpec], per_spec: list[Row | None], existing: Sequence[Row]
) -> list[Row]:
    holders = _holders(existing)
    out: list[Row] = []
    pos = 0  # the refused specs were looked up in order
    for spec, ins in zip(specs, per_spec, strict=True):
        if ins is None:
            pos += 1
            out.append(holders[pos])
        else:
            out.append(job_row(spec, ins))
    return out


def queue_full(names: Sequence[str]) -> QueueFull:
    return QueueFull(f"queue {', '.join(map(repr, names))} is at its maximum depth")


def check_full(rows: list[Row]) -> list[Row]:
    """Raise ``QueueFull`` for the queues the ``enqueue`` query refused."""
    full = sorted(r[1] for r in rows if r[0] is None)
    if full:
        raise queue_full(full)
    return rows


REFUSED_TRIES = 5  # a held key whose holder finishes meanwhile: insert again


def _refused(spec: JobSpec, holder: Row | None, depth: Row | None) -> Row | None:
    """Why an ``enqueue_one*`` statement inserted nothing: the job holding the
    key, or QueueFull. None: try again (with ``enqueue_one_limited`` if the
    queue has a max_depth; else the holder finished meanwhile)."""
    if holder is not None and holder[6] not in FINISHED:
        return holder
    if depth is not None and depth[1]:
        raise queue_full([spec.queue])
    return None


def _statement(spec: JobSpec, limited: set[str]) -> str:
    return query("enqueue_one_limited" if spec.queue in limited else "enqueue_one")


def enqueue_one_sync(
    conn: psycopg.Connection[Any], spec: JobSpec, params: dict[str, Any], limited: set[str]
) -> Row:
    """One job in one round trip; a refused insert costs one or two more.

    ``limited``: the queues known to have a max_depth (learnt here); only
    their statement counts the waiting jobs.
    """
    with conn.cursor(row_factory=tuple_row) as cur:
        for _ in range(REFUSED_TRIES):
            ins = cur.execute(_statement(spec, limited), params).fetchone()
            if ins is not None:
                return job_row(spec, ins)
            holder = None
            if spec.unique_key is not None:
                cur.execute(query("jobs_by_unique_key"), holder_params([spec]))
                holder = _first_holder(cur.fetchall())
            depth = cur.execute(query("queue_depth"), {"queue": spec.queue}).fetchone()
            _learn(spec, depth, limited)
            row = _refused(spec, holder, depth)
            if row is not None:
                return row
    raise PgQueueError(f"unique key {spec.unique_key!r}: its holder keeps changing; not enqueued")


async def enqueue_one_async(
    conn: psycopg.AsyncConnection[Any],
    spec: JobSpec,
    params: dict[str, Any],
    limited: set[str],
    *,
    refused: bool = False,
) -> Row:
    """``refused``: the caller's own ``enqueue_one`` inserted nothing (``_lean``);
    start with asking why."""
    async with conn.cursor(row_factory=tuple_row) as cur:
        for attempt in range(REFUSED_TRIES):
            if attempt or not refused:
                await cur.execute(_statement(spec, limited), params)
                ins = await cur.fetchone()
                if ins is not None:
                    return job_row(spec, ins)
            holder = None
            if spec.unique_key is not None:
                await cur.execute(query("jobs_by_unique_key"), holder_params([spec]))
                holder = _first_holder(await cur.fetchall())
            await cur.execute(query("queue_depth"), {"queue": spec.queue})
            depth = await cur.fetchone()
            _learn(spec, depth, limited)
            row = _refused(spec, holder, depth)
            if row is not None:
                return row
    raise PgQueueError(f"unique key {spec.unique_key!r}: its holder keeps changing; not enqueued")


def _first_holder(rows: Sequence[Row]) -> Row | None:
    return rows[0][:-1] if rows else None


def _learn(spec: JobSpec, depth: Row | None, limited: set[str]) -> None:
    # A stale entry (the limit was lifted since) only costs the counting statement.
    if depth is not None and depth[0]:
        limited.add(spec.queue)
    else:
        limited.discard(spec.queue)


def _transaction(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> Any:
    """The prelude and its COPY must share a transaction: open one on an
    autocommit connection (the pool's); join the caller's otherwise.
    (``nullcontext`` serves ``with`` and ``async with`` alike.)"""
    if conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE:
        return conn.transaction()
    return contextlib.nullcontext()


def _copied(prelude: Row | None) -> tuple[list[int], Any]:
    assert prelude is not None
    now, full, ids, _woken = prelude
    if full:
        raise queue_full(full)
    return sorted(ids), now


def enqueue_bulk_sync(conn: psycopg.Connection[Any], batch: Batch, owner: JobOwner) -> list[Job]:
    if not batch.copy:
        rows = _enqueue_json_sync(conn, batch.specs, batch.params)
        return [Job.from_row(r, owner) for r in rows]
    with _transaction(conn), conn.cursor(row_factory=tuple_row) as cur:
        ids, now = _copied(cur.execute(query("enqueue_prelude"), batch.params).fetchone())
        jobs: list[Job] = []
        with cur.copy(query(batch.copy_query), writer=QueuedLibpqWriter(cur)) as cp, gc_paused():
            for row in batch.rows(ids, now, owner, jobs):
                cp.write_row(row)
    return jobs


async def enqueue_bulk_async(
    conn: psycopg.AsyncConnection[Any], batch: Batch, owner: JobOwner
) -> list[Job]:
    if not batch.copy:
        rows = await _enqueue_json_async(conn, batch.specs, batch.params)
        return [Job.from_row(r, owner) for r in rows]
    async with _transaction(conn), conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(query("enqueue_prelude"), batch.params)
        ids, now = _copied(await cur.fetchone())
        jobs: list[Job] = []
        async with cur.copy(query(batch.copy_query)) as cp:
            with gc_paused():
                for row in batch.rows(ids, now, owner, jobs):
                    await cp.write_row(row)
    return jobs


def _enqueue_json_sync(
    conn: psycopg.Connection[Any], specs: Sequence[JobSpec], params: dict[str, Any]
) -> list[Row]:
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute(query("enqueue"), params)
        per_spec, missing = match_inserted(specs, check_full(cur.fetchall()))
        existing: list[Row] = []
        if missing:
            cur.execute(query("jobs_by_unique_key"), holder_params(missing))
            existing = cur.fetchall()
    return _assemble(specs, per_spec, existing)


async def _enqueue_json_async(
    conn: psycopg.AsyncConnection[Any], specs: Sequence[JobSpec], params: dict[str, Any]
) -> list[Row]:
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(query("enqueue"), params)
        per_spec, missing = match_inserted(specs, check_full(await cur.fetchall()))
        existing: list[Row] = []
        if missing:
            await cur.execute(query("jobs_by_unique_key"), holder_params(missing))
            existing = await cur.fetchall()
    return _assemble(specs, per_spec, existing)
