"""``pgqueue.Job``: a job row as seen by Python."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pgqueue._core import FINISHED, JOB_FIELDS, JobSpec

if TYPE_CHECKING:
    from pgqueue._protocols import JobOwner


@dataclass
class Job:
    """A job: the fields of its ``pgqueue.jobs`` row when it was read."""

    __module__ = "pgqueue"

    id: int
    queue: str
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    priority: int
    status: str
    run_at: datetime
    attempts: int
    max_attempts: int
    leased_until: datetime | None
    worker_id: str | None
    unique_key: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    last_error: str | None
    errors: list[dict[str, Any]]
    result: Any
    progress: Any
    cancel_requested: bool
    meta: dict[str, Any]
    flow_id: int | None = None  # the flow this job belongs to (its first job's id)
    parent_ids: list[int] | None = None  # the jobs it waits for, in declaration order
    _owner: JobOwner | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_row(cls, row: Any, owner: JobOwner | None = None) -> Job:
        job = cls(*row)
        job._owner = owner
        return job

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def _bound(self) -> JobOwner:
        if self._owner is None:
            raise RuntimeError("this Job is not bound to an App")
        return self._owner

    def refresh(self) -> Job:
        """Re-read this job from the database (returns a new Job)."""
        return self._bound().get_job(self.id)

    async def refresh_async(self) -> Job:
        return await self._bound().get_job_async(self.id)

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the job finishes; return its result or raise ``JobFailed``."""
        return self._bound().wait_for(self.id, timeout=timeout)

    async def wait_async(self, timeout: float | None = None) -> Any:
        return await self._bound().wait_for_async(self.id, timeout=timeout)


assert tuple(f for f in Job.__dataclass_fields__ if f != "_owner") == JOB_FIELDS


def inserted_row(
    spec: JobSpec,
    job_id: int,
    run_at: datetime,
    created_at: datetime,
    status: str = "queued",
    unique_key: str | None = None,
) -> tuple[Any, ...]:
    """The row (JOB_FIELDS order) of a job just inserted from ``spec``: what a
    ``Job`` is built from without reading the row back."""
    return (
        job_id, spec.queue, spec.task, list(spec.args), _dict(spec.kwargs), spec.priority,
        status, run_at, 0, spec.max_attempts, None, None, unique_key, created_at,
        None, None, None, [], None, None, False, _dict(spec.meta),
    )  # fmt: skip


def _dict(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return mapping if type(mapping) is dict else dict(mapping)
