"""Reading jobs: one job by id, a filtered page of jobs (newest first).

Operations (see ``_db``): written once, driven sync or async. Rows come back
as ``Job`` values bound to their ``owner`` (``job.refresh()``, ``job.wait()``).
"""

from __future__ import annotations

from typing import Any

from pgqueue._core import check_status
from pgqueue._db import Operation, Statement
from pgqueue._errors import JobNotFound
from pgqueue._job import Job
from pgqueue._protocols import JobOwner
from pgqueue._sql import query

LIST_FILTERS = ("queue", "task", "status", "older_than", "before_id", "limit")


def get_job(owner: JobOwner, job_id: int) -> Operation[Job]:
    rows = yield Statement(query("get_job"), {"id": job_id})
    if not rows:
        raise JobNotFound(f"no job with id {job_id}")
    return Job.from_row(rows[0], owner)


def list_params(
    queue: str | None = None,
    task: str | None = None,
    status: str | None = None,
    older_than: float | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> dict[str, Any]:
    if status is not None:
        check_status(status)
    if limit < 0:
        raise ValueError("limit must be >= 0")
    if older_than is not None and older_than < 0:
        raise ValueError("older_than must be >= 0 seconds")
    return {"queue": queue, "task": task, "status": status, "older_than": older_than,
            "before_id": before_id, "limit": limit}  # fmt: skip


def list_jobs(owner: JobOwner, **filters: Any) -> Operation[list[Job]]:
    """Jobs, newest first, filtered by queue, task, status, minimum age (seconds)."""
    unknown = sorted(set(filters) - set(LIST_FILTERS))
    if unknown:
        raise TypeError(f"list_jobs: unknown filter {', '.join(unknown)}")
    rows = yield Statement(query("list_jobs"), list_params(**filters))
    return [Job.from_row(r, owner) for r in rows]
