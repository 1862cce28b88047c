"""``pgqueue.current_job()``: what a running task knows about its own job.

Inside a task (sync or async), ``current_job()`` gives the job's id, attempt
and ``meta`` (cron fires carry ``meta["scheduled_for"]``), lets the task
report progress (a small JSON value, visible in ``pgqueue jobs show``, the API
and ``pgqueue.jobs.progress``), and tells it whether cancellation was
requested. Async tasks are cancelled for you; a sync task checks
``cancel_requested`` (or calls ``raise_if_cancelled()``) at points of its choosing.
A job with parents (``depends_on``, a flow) reads their results in
``parent_results``, by parent id (read with the claim: no query of its own).
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any

from pgqueue._core import dumps
from pgqueue._errors import JobCancelled
from pgqueue._sql import query

if TYPE_CHECKING:
    from pgqueue._db import Database

_current: ContextVar[JobContext | None] = ContextVar("pgqueue_current_job", default=None)


class JobContext:
    """The running job, as its task sees it."""

    __module__ = "pgqueue"

    def __init__(
        self,
        database: Database,
        *,
        id: int,
        task: str,
        queue: str,
        attempt: int,
        max_attempts: int,
        token: str,
        meta: dict[str, Any] | None,
        parent_results: dict[int, Any] | None = None,
    ) -> None:
        self._database = database
        self.id = id
        self.task = task
        self.queue = queue
        self.attempt = attempt
        self.max_attempts = max_attempts
        self.meta = meta or {}
        self.parent_results: dict[int, Any] = parent_results or {}
        self._token = token
        self._cancel = False

    def __repr__(self) -> str:
        return f"<pgqueue.JobContext job={self.id} task={self.task} attempt={self.attempt}>"

    @property
    def cancel_requested(self) -> bool:
        """True once someone asked to cancel this job (pushed to the worker at once)."""
        return self._cancel

    def request_cancel(self) -> None:
        self._cancel = True

    def raise_if_cancelled(self) -> None:
        """Raise ``pgqueue.JobCancelled`` if cancellation was requested: the job ends cancelled."""
        if self._cancel:
            raise JobCancelled("cancellation requested")

    def _progress_params(self, value: Any) -> dict[str, Any]:
        return {
            "id": self.id,
            "token": self._token,
            "progress": dumps(value, f"progress of job {self.id}"),
        }

    def _seen(self, row: tuple[Any, ...] | None) -> bool:
        if row is not None and row[0]:
            self._cancel = True
        return row is not None

    def set_progress(self, value: Any) -> bool:
        """Store ``value`` (JSON) as the job's progress; False if the lease was lost."""
        params = self._progress_params(value)
        with self._database.connection() as conn:
            return self._seen(conn.execute(query("set_progress"), params).fetchone())

    async def set_progress_async(self, value: Any) -> bool:
        params = self._progress_params(value)
        async with self._database.connection_async() as conn:
            cur = await conn.execute(query("set_progress"), params)
            return self._seen(await cur.fetchone())


def current_job() -> JobContext:
    """The job the calling task is running; ``RuntimeError`` outside a task."""
    ctx = _current.get()
    if ctx is None:
        raise RuntimeError("pgqueue.current_job() is only available inside a running task")
    return ctx


def enter(ctx: JobContext) -> Token[JobContext | None]:
    return _current.set(ctx)


def leave(token: Token[JobContext | None]) -> None:
    _current.reset(token)


current_job.__module__ = "pgqueue"
