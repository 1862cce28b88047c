"""Enqueue and inspect: one statement builder, thin sync and async runners."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from pgqueue._core import JobSpec, check_status, match_inserted
from pgqueue._errors import QueueFull
from pgqueue._sql import query

Row = tuple[Any, ...]
Statement = tuple[str, dict[str, Any]]  # query name, parameters (see _core.enqueue_query)


def _job_row(spec: JobSpec, ins: Row) -> Row:
    """A full job row (JOB_FIELDS order) from a spec and its ``enqueue`` result."""
    job_id, unique_key, status, run_at, created_at = ins[:5]
    return (
        job_id, spec.queue, spec.task, list(spec.args), spec.kwargs, spec.priority,
        status, run_at, 0, spec.max_attempts, None, None, unique_key, created_at,
        None, None, None, [], None, None, False, spec.meta,
    )  # fmt: skip


def _assemble(
    specs: Sequence[JobSpec], per_spec: list[Row | None], existing: Sequence[Row]
) -> list[Row]:
    by_key = {row[12]: row for row in existing}
    out: list[Row] = []
    for spec, ins in zip(specs, per_spec, strict=True):
        if ins is not None:
            out.append(_job_row(spec, ins))
        else:
            assert spec.unique_key is not None
            out.append(by_key[spec.unique_key])
    return out


def check_full(rows: list[Row]) -> list[Row]:
    """Raise ``QueueFull`` for the queues the ``enqueue`` query refused."""
    full = sorted(r[1] for r in rows if r[0] is None)
    if full:
        raise QueueFull(f"queue {', '.join(map(repr, full))} is at its maximum depth")
    return rows


def enqueue_sync(
    conn: psycopg.Connection[Any], specs: Sequence[JobSpec], statement: Statement
) -> list[Row]:
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute(query(statement[0]), statement[1])
        per_spec, missing = match_inserted(specs, check_full(cur.fetchall()))
        existing: list[Row] = []
        if missing:
            cur.execute(query("jobs_by_unique_key"), {"keys": missing})
            existing = cur.fetchall()
    return _assemble(specs, per_spec, existing)


async def enqueue_async(
    conn: psycopg.AsyncConnection[Any], specs: Sequence[JobSpec], statement: Statement
) -> list[Row]:
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(query(statement[0]), statement[1])
        per_spec, missing = match_inserted(specs, check_full(await cur.fetchall()))
        existing: list[Row] = []
        if missing:
            await cur.execute(query("jobs_by_unique_key"), {"keys": missing})
            existing = await cur.fetchall()
    return _assemble(specs, per_spec, existing)


def list_params(
    queue: str | None,
    task: str | None,
    status: str | None,
    older_than: float | None,
    before_id: int | None,
    limit: int,
) -> dict[str, Any]:
    if status is not None:
        check_status(status)
    if limit < 0:
        raise ValueError("limit must be >= 0")
    if older_than is not None and older_than < 0:
        raise ValueError("older_than must be >= 0 seconds")
    return {
        "queue": queue,
        "task": task,
        "status": status,
        "older_than": older_than,
        "before_id": before_id,
        "limit": limit,
    }
