"""Eager mode and ``run_job``: a task run in the caller's thread or loop, no worker."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from pgqueue import App, _context
from pgqueue._eager import (
    EagerContext,
    EagerRunner,
    call_async,
    call_sync,
    decoded,
    hooks_of,
    json_result,
    run_coroutine,
)
from pgqueue._job import Job
from pgqueue._task import Task, TaskOptions

# -- eager mode ----------------------------------------------------------------------


@contextlib.contextmanager
def eager(app: App, *, propagate: bool = True) -> Iterator[list[Job]]:
    """Within the block, enqueue runs each job at once instead of inserting it.

    ``task.enqueue``, ``enqueue_async`` and ``app.enqueue_many`` run the task
    in the caller's thread (an async task: on the caller's loop with
    ``enqueue_async``, else on a loop of its own) and return a ``Job`` whose
    status, result, errors and progress are set; ``current_job()`` works
    inside and the app's middleware applies. Arguments and results go
    through JSON as they would through the database. A task's exception
    propagates out of ``enqueue``; with ``propagate=False`` it is recorded as
    the job's outcome instead (``failed``, ``dead`` or ``cancelled``).

    One attempt per job: delays, ``run_at``, unique keys and retries are not
    applied, and nothing is written to ``pgqueue.jobs`` (a transactional task
    still gets a connection, the caller's when one was given). Eager mode is
    app-wide, for all threads; the block yields the list of jobs it ran.
    """
    hooks = app.registry.hooks
    runner = EagerRunner(app.registry, app.database, propagate)
    saved = hooks.inline, hooks.inline_async
    hooks.inline, hooks.inline_async = runner.run, runner.run_async
    try:
        yield runner.jobs
    finally:
        hooks.inline, hooks.inline_async = saved


# -- calling a task directly -----------------------------------------------------------


def _prepare(
    task: Task[Any, Any] | TaskOptions[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Task[Any, Any], EagerContext, tuple[Any, ...], dict[str, Any]]:
    """The task, its job context and its arguments as a worker would pass them."""
    options = task if isinstance(task, TaskOptions) else task.options()
    real = options.task
    if real.fn is None:
        raise TypeError(f"task {real.name!r} is a reference by name; it cannot run here")
    connection = kwargs.pop("connection", None) if real.config.transactional else None
    spec = options.job(*args, **kwargs)
    call_args, call_kwargs, meta = decoded(spec)
    if connection is not None:
        call_kwargs["connection"] = connection
    # No database: an EagerContext keeps progress in memory and never connects.
    ctx = EagerContext(None, id=0, task=real.name, queue=spec.queue,  # type: ignore[arg-type]
                       attempt=1, max_attempts=spec.max_attempts, token="", meta=meta)  # fmt: skip
    return real, ctx, call_args, call_kwargs


def run_job(task: Task[Any, Any] | TaskOptions[Any, Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``task`` once as a worker would, without the database; return its result.

    The arguments are checked against the signature and pass through JSON;
    the task runs inside a job context (``current_job()``: id 0, attempt 1,
    the meta of ``task.options(meta=...)``; ``set_progress`` is kept in
    memory) and the app's execute middleware; the result must be JSON and is
    returned as a reader of the job would get it. Exceptions propagate. A
    transactional task needs ``connection=`` (a psycopg connection). An
    async task runs on a loop of its own (see ``run_job_async``).
    """
    real, ctx, call_args, call_kwargs = _prepare(task, args, kwargs)
    fn = hooks_of(real).wrap_execute(real, _context.current_job)
    token = _context.enter(ctx)
    try:
        if real.is_async:
            result = run_coroutine(lambda: call_async(fn, real, call_args, call_kwargs, None, None))
        else:
            result = call_sync(fn, real, call_args, call_kwargs, None, None)
    finally:
        _context.leave(token)
    return json_result(real.name, result)


async def run_job_async(
    task: Task[Any, Any] | TaskOptions[Any, Any], *args: Any, **kwargs: Any
) -> Any:
    """``run_job`` on the running loop (a sync task runs in this thread)."""
    real, ctx, call_args, call_kwargs = _prepare(task, args, kwargs)
    fn = hooks_of(real).wrap_execute(real, _context.current_job)
    token = _context.enter(ctx)
    try:
        if real.is_async:
            result = await call_async(fn, real, call_args, call_kwargs, None, None)
        else:
            result = call_sync(fn, real, call_args, call_kwargs, None, None)
    finally:
        _context.leave(token)
    return json_result(real.name, result)
