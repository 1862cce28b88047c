"""What ``Task`` and ``Job`` need of their owner: small protocols, not ``App``.

The ``App`` facade satisfies both; a test helper or another front can too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pgqueue._core import JobSpec
    from pgqueue._job import Job


class TaskOwner(Protocol):
    """Enqueues the jobs a ``Task`` builds."""

    def enqueue_one(self, spec: JobSpec, *, connection: Any = None) -> Job: ...

    async def enqueue_one_async(self, spec: JobSpec, *, connection: Any = None) -> Job: ...


class JobOwner(Protocol):
    """Re-reads and waits for the ``Job`` it handed out."""

    def get_job(self, job_id: int) -> Job: ...

    async def get_job_async(self, job_id: int) -> Job: ...

    def wait_for(self, job_id: int, *, timeout: float | None = None) -> Any: ...

    async def wait_for_async(self, job_id: int, *, timeout: float | None = None) -> Any: ...


class RunningJob(Protocol):
    """What middleware sees of a running job (``pgqueue.JobContext`` is one)."""

    id: int
    task: str
    queue: str
    attempt: int
    max_attempts: int
    meta: dict[str, Any]
