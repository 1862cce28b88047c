"""Running one attempt of a task in the caller's thread or loop, without a worker.

What ``pgqueue.testing.eager`` and ``run_job`` share: the arguments go
through JSON as they would through the database, the task runs inside a job
context (``current_job()``) and the app's execute middleware, and the result
must be JSON, as for the worker.

Dependencies run in order too: a batch (or flow) runs job by job in batch
order, which puts parents first; a job whose parent did not succeed is
cancelled (``ParentFailed``) unless it declared ``on_parent_failure="run"``,
and a job receives its parents' results as the worker would pass them.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import json
import threading
import traceback
from collections.abc import Callable, Coroutine
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from pgqueue import _context
from pgqueue._core import (
    DEFAULT_MAX_PAYLOAD,
    FINISHED,
    JobSpec,
    SpecRef,
    dumps,
    enqueue_one_params,
    format_error,
)
from pgqueue._errors import DependencyError, JobFailed, JobNotFound
from pgqueue._hooks import Attempt, Hooks
from pgqueue._job import Job

if TYPE_CHECKING:
    from pgqueue._db import Database
    from pgqueue._registry import Registry
    from pgqueue._task import Task


class EagerContext(_context.JobContext):
    """A job context with no row behind it: progress is kept here."""

    progress: Any = None

    def set_progress(self, value: Any) -> bool:
        self.progress = json.loads(dumps(value, f"progress of job {self.id}"))
        return True

    async def set_progress_async(self, value: Any) -> bool:
        return self.set_progress(value)


def decoded(
    spec: JobSpec, max_payload: int = DEFAULT_MAX_PAYLOAD
) -> tuple[tuple[Any, ...], dict[str, Any], dict[str, Any]]:
    """args, kwargs and meta as a worker would decode them (TypeError if not
    JSON, ValueError over ``max_payload`` bytes, as for a real enqueue)."""
    params = enqueue_one_params(spec, max_payload)
    return (
        tuple(json.loads(params["args"])),
        json.loads(params["kwargs"]),
        json.loads(params["meta"]),
    )


def hooks_of(task: Task[Any, Any]) -> Hooks:
    registry: Registry | None = getattr(task.app, "registry", None)
    return registry.hooks if registry is not None else Hooks()


def run_coroutine(make: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run a coroutine to its end from sync code: here, or (under a running
    loop) on a thread of its own, in a copy of this context either way."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    box: dict[str, Any] = {}
    context = contextvars.copy_context()

    def target() -> None:
        try:
            box["result"] = context.run(asyncio.run, make())
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="pgqueue-eager")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("result")


def call_sync(
    fn: Callable[..., Any],
    task: Task[Any, Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    database: Database | None,
    connection: Any,
) -> Any:
    if task.config.transactional and database is not None:
        with database.connection(connection) as conn, conn.transaction():
            return fn(*args, connection=conn, **kwargs)
    return fn(*args, **kwargs)


async def call_async(
    fn: Callable[..., Any],
    task: Task[Any, Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    database: Database | None,
    connection: Any,
) -> Any:
    if task.config.transactional and database is not None:
        async with database.connection_async(connection) as conn, conn.transaction():
            return await fn(*args, connection=conn, **kwargs)
    return await fn(*args, **kwargs)


def json_result(task: str, result: Any) -> Any:
    """The result as a reader of the job gets it back; TypeError if not JSON."""
    return None if result is None else json.loads(dumps(result, f"the result of task {task}"))


class EagerRunner:
    """The inline runner ``eager(app)`` installs: runs each job instead of inserting it.

    It owns the ``Job`` values it returns (``job.refresh()``, ``job.wait()``).
    """

    def __init__(self, registry: Registry, database: Database, propagate: bool) -> None:
        self.registry = registry
        self.database = database
        self.propagate = propagate
        self.jobs: list[Job] = []
        self._ids = itertools.count(1)

    # -- the Hooks.inline interface ------------------------------------------------------

    def run(self, specs: list[JobSpec], connection: Any) -> list[Job]:
        done: list[Job] = []
        for s in specs:
            done.append(self._one(s, connection, done))
        return done

    async def run_async(self, specs: list[JobSpec], connection: Any) -> list[Job]:
        done: list[Job] = []
        for s in specs:
            done.append(await self._one_async(s, connection, done))
        return done

    def _parents(self, spec: JobSpec, batch: list[Job]) -> list[Job]:
        try:
            return [batch[p.pos] if isinstance(p, SpecRef) else self.get_job(p)
                    for p in spec.depends_on]  # fmt: skip
        except JobNotFound:
            raise DependencyError(f"job of {spec.task} depends on a job that did not run") from None

    def _start(
        self, spec: JobSpec, batch: list[Job]
    ) -> tuple[Task[Any, Any], EagerContext, Attempt] | Job:
        args, kwargs, meta = decoded(spec, self.registry.max_payload)  # raises as enqueue does
        parents = self._parents(spec, batch)
        job_id = next(self._ids)
        ctx = EagerContext(self.database, id=job_id, task=spec.task, queue=spec.queue, attempt=1,
                           max_attempts=spec.max_attempts, token="eager", meta=meta,
                           parent_results={p.id: p.result for p in parents})  # fmt: skip
        failed = next((p for p in parents if p.status != "succeeded"), None)
        if failed is not None and spec.on_parent_failure == "cancel":
            reason = f"ParentFailed: parent job {failed.id} ({failed.task}) ended {failed.status}"
            job = self._record(spec, Attempt(ctx, args, kwargs), None, None, "cancelled")
            job.attempts, job.started_at, job.last_error = 0, None, reason
            job.errors = [{"attempt": 0, "type": "pgqueue.ParentFailed", "parent": failed.id,
                           "error": reason}]  # fmt: skip
            return job
        if spec.pass_result == "previous" and parents:
            args = (parents[-1].result, *args)
        elif spec.pass_result == "list":
            args = ([p.result for p in parents], *args)
        task = self.registry.get(spec.task)
        if task is None or task.fn is None:
            # As a worker would: the job is dead, with a message naming the task.
            error = LookupError(f"no task named {spec.task!r} is registered in this app")
            job = self._record(spec, Attempt(ctx, args, kwargs), None, error, "dead")
            if self.propagate:
                raise error
            return job
        return task, ctx, Attempt(ctx, args, kwargs)

    def _one(self, spec: JobSpec, connection: Any, batch: list[Job]) -> Job:
        started = self._start(spec, batch)
        if isinstance(started, Job):
            return started
        task, ctx, attempt = started
        fn = self.registry.hooks.wrap_execute(task, _context.current_job)
        token = _context.enter(ctx)
        try:
            if task.is_async:
                db = self.database
                result = run_coroutine(
                    lambda: call_async(fn, task, attempt.args, attempt.kwargs, db, connection)
                )
            else:
                result = call_sync(fn, task, attempt.args, attempt.kwargs, self.database,
                                   connection)  # fmt: skip
            return self._record(spec, attempt, json_result(task.name, result), None)
        except Exception as exc:
            return self._failed(spec, attempt, exc)
        finally:
            _context.leave(token)

    async def _one_async(self, spec: JobSpec, connection: Any, batch: list[Job]) -> Job:
        started = self._start(spec, batch)
        if isinstance(started, Job):
            return started
        task, ctx, attempt = started
        fn = self.registry.hooks.wrap_execute(task, _context.current_job)
        token = _context.enter(ctx)
        try:
            if task.is_async:
                result = await call_async(fn, task, attempt.args, attempt.kwargs, self.database,
                                          connection)  # fmt: skip
            else:
                result = call_sync(fn, task, attempt.args, attempt.kwargs, self.database, None)
            return self._record(spec, attempt, json_result(task.name, result), None)
        except Exception as exc:
            return self._failed(spec, attempt, exc)
        finally:
            _context.leave(token)

    def _failed(self, spec: JobSpec, attempt: Attempt, exc: Exception) -> Job:
        job = self._record(spec, attempt, None, exc)
        if self.propagate:
            raise exc
        return job

    def _record(
        self,
        spec: JobSpec,
        attempt: Attempt,
        result: Any,
        exc: Exception | None,
        status: str | None = None,
    ) -> Job:
        now = datetime.now(timezone.utc)
        status = status or attempt.outcome(exc)
        errors: list[dict[str, Any]] = []
        if exc is not None:
            tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            errors.append({**format_error(exc, 1, tb, now), "status": status})
        ctx = attempt.job
        job = Job(
            id=ctx.id, queue=spec.queue, task=spec.task, args=list(attempt.args),
            kwargs=attempt.kwargs, priority=spec.priority, status=status, run_at=now, attempts=1,
            max_attempts=spec.max_attempts, leased_until=None, worker_id="eager",
            unique_key=spec.unique_key, created_at=now, started_at=now,
            finished_at=now if status in FINISHED else None,
            last_error=errors[0]["error"] if errors else None, errors=errors, result=result,
            progress=getattr(ctx, "progress", None), cancel_requested=False, meta=ctx.meta,
        )  # fmt: skip
        job._owner = self
        self.jobs.append(job)
        return job

    # -- JobOwner: the jobs it ran -------------------------------------------------------

    def get_job(self, job_id: int) -> Job:
        for job in self.jobs:
            if job.id == job_id:
                return job
        raise JobNotFound(f"no job with id {job_id} ran in eager mode")

    async def get_job_async(self, job_id: int) -> Job:
        return self.get_job(job_id)

    def wait_for(self, job_id: int, *, timeout: float | None = None) -> Any:
        job = self.get_job(job_id)
        if job.status != "succeeded":
            raise JobFailed(job)
        return job.result

    async def wait_for_async(self, job_id: int, *, timeout: float | None = None) -> Any:
        return self.wait_for(job_id, timeout=timeout)
