"""The workflow part of the ``App`` facade: declarations and thin delegations.

A mixin, so that ``_app.py`` stays small; the work is in ``_workflows``
(statements) and ``_replay`` (the replay the worker runs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

from pgqueue import _inspect, _workflows
from pgqueue._core import RetryPolicy
from pgqueue._workflow import Step, StepRecord, Workflow, WorkflowHandle

if TYPE_CHECKING:
    from pgqueue._db import Database
    from pgqueue._job import Job
    from pgqueue._registry import Registry

F = TypeVar("F", bound=Callable[..., Any])


class WorkflowsMixin:
    """``app.workflow``, ``app.step``, ``app.send_event``, ``app.get_workflow``, ..."""

    database: Database
    registry: Registry

    @overload
    def workflow(self, fn: F, /) -> Workflow[Any, Any]: ...
    @overload
    def workflow(
        self,
        *,
        name: str | None = None,
        queue: str = "default",
        priority: int = 0,
        max_attempts: int = 3,
        timeout: float | None = None,
        lease: float | None = None,
        retry: RetryPolicy | None = None,
        unique_scope: str = "task",
    ) -> Callable[[F], Workflow[Any, Any]]: ...

    def workflow(self, fn: Any = None, /, **options: Any) -> Any:  # type: ignore[misc]
        """Declare a durable workflow (sync or async): ``@app.workflow(queue=...)``.

        It runs as a job of that queue; its steps' results are checkpointed and
        replayed (see the README, "Durable workflows").
        """
        if fn is not None:
            return self.registry.register(fn, options, Workflow)
        return lambda func: self.registry.register(func, options, Workflow)

    @overload
    def step(self, fn: F, /) -> Step[Any, Any]: ...
    @overload
    def step(
        self,
        *,
        name: str | None = None,
        max_attempts: int = 1,
        timeout: float | None = None,
        transactional: bool = False,
        retry: RetryPolicy | None = None,
    ) -> Callable[[F], Step[Any, Any]]: ...

    def step(self, fn: Any = None, /, **options: Any) -> Any:  # type: ignore[misc]
        """Declare a workflow step: ``@app.step(max_attempts=3, timeout=10,
        transactional=True)``; a transactional step takes a ``connection``."""
        if fn is not None:
            return self.registry.step(fn, options)
        return lambda func: self.registry.step(func, options)

    # -- events ------------------------------------------------------------------

    def send_event(
        self, workflow_id: int, name: str, payload: Any = None, *, connection: Any = None
    ) -> None:
        """Send ``payload`` (JSON) as event ``name`` to a workflow; with ``connection``,
        in the caller's transaction (rollback: no event, no wake-up)."""
        data = _workflows.event_payload(name, payload)  # bad values raise before any I/O
        op = _workflows.send_event(workflow_id, name, data)
        with self.database.connection(connection) as conn:
            # In the caller's transaction, the row lock lasts until the caller commits;
            # on its own (or an autocommit connection), in a transaction of its own.
            self.database.run(op, connection=conn, transaction=conn.autocommit)

    async def send_event_async(
        self, workflow_id: int, name: str, payload: Any = None, *, connection: Any = None
    ) -> None:
        op = _workflows.send_event(workflow_id, name, _workflows.event_payload(name, payload))
        async with self.database.connection_async(connection) as conn:
            await self.database.run_async(op, connection=conn, transaction=conn.autocommit)

    # -- inspection and control ------------------------------------------------------

    def get_workflow(self, workflow_id: int) -> WorkflowHandle:
        """A handle on a workflow by its job id (``JobNotFound`` if there is none)."""
        job = self.database.run(_inspect.get_job(self._owner(), workflow_id))
        return WorkflowHandle(job.id, self, job)

    async def get_workflow_async(self, workflow_id: int) -> WorkflowHandle:
        job = await self.database.run_async(_inspect.get_job(self._owner(), workflow_id))
        return WorkflowHandle(job.id, self, job)

    def list_workflows(self, *, status: str | None = None, limit: int = 100) -> list[Job]:
        """Workflow jobs, newest first (those that have run, and this app's not yet run)."""
        op = _workflows.list_workflows(self._owner(), self.registry.workflows(), status=status,
                                       limit=limit)  # fmt: skip
        return self.database.run(op)

    async def list_workflows_async(
        self, *, status: str | None = None, limit: int = 100
    ) -> list[Job]:
        op = _workflows.list_workflows(self._owner(), self.registry.workflows(), status=status,
                                       limit=limit)  # fmt: skip
        return await self.database.run_async(op)

    def workflow_steps(self, workflow_id: int) -> list[StepRecord]:
        """The workflow's step log, in order."""
        return self.database.run(_workflows.steps(workflow_id))

    async def workflow_steps_async(self, workflow_id: int) -> list[StepRecord]:
        return await self.database.run_async(_workflows.steps(workflow_id))

    def cancel_workflow(self, workflow_id: int) -> None:
        """Cancel a workflow and the children it waits for (see ``cancel_jobs``)."""
        self.database.run(_workflows.cancel(workflow_id), transaction=True)

    async def cancel_workflow_async(self, workflow_id: int) -> None:
        await self.database.run_async(_workflows.cancel(workflow_id), transaction=True)

    def _owner(self) -> Any:
        return self  # the App: a JobOwner
