"""Helpers for testing code that uses pgqueue (public API).

Three ways to test, from the fastest to the most faithful::

    from pgqueue import testing

    # 1. Call a task as the worker would: JSON arguments, a job context, no database.
    assert testing.run_job(send_email, 42, template="welcome") == {"sent": True}

    # 2. Eager mode: enqueue runs the task inline and returns the finished Job.
    with testing.eager(app):
        job = signup(user_id=42)          # code under test that enqueues send_email
    assert job.status == "succeeded"

    # 3. Against the real database: assert what was enqueued, then run it.
    signup(user_id=42)
    testing.assert_enqueued(app, send_email, args=[42])
    assert testing.drain(app) == 1

The pytest plugin (``pgqueue.pytest_plugin``, registered as an entry point)
gives a throwaway database per session and a clean one per test
(``pgqueue_dsn``, ``pgqueue_db``, ``pgqueue_app``).

.. versionadded:: 0.1
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from pgqueue import App, _context
from pgqueue._core import JOB_FIELDS, check_status
from pgqueue._db import Statement
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
from pgqueue._sql import query
from pgqueue._task import Task, TaskOptions
from pgqueue.worker import Worker, WorkerConfig

__all__ = [
    "assert_enqueued",
    "drain",
    "drain_async",
    "eager",
    "enqueued",
    "refute_enqueued",
    "run_job",
    "run_job_async",
]

DRAIN_TICK = 0.02  # seconds between drain()'s checks of the database
PAGE = 1000


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


# -- what was enqueued -----------------------------------------------------------------


def _task_name(task: Task[Any, Any] | TaskOptions[Any, Any] | str | None) -> str | None:
    if isinstance(task, TaskOptions):
        return task.task.name
    return task.name if isinstance(task, Task) else task


def _matches(job: Job, filters: Mapping[str, Any]) -> bool:
    for name, want in filters.items():
        have = getattr(job, name)
        if name == "meta":
            if any(have.get(k, object()) != v for k, v in want.items()):
                return False
        elif name == "status" and not isinstance(want, str):
            if have not in want:
                return False
        elif name == "args":
            if list(have) != list(want):
                return False
        elif have != want:
            return False
    return True


def enqueued(
    app: App,
    task: Task[Any, Any] | TaskOptions[Any, Any] | str | None = None,
    queue: str | None = None,
    **filters: Any,
) -> list[Job]:
    """The jobs in the database that match, oldest first.

    ``task``: a task or its name. ``filters``: any ``Job`` field by equality
    (``args=[42]``, ``kwargs={...}``, ``priority=5``, ``unique_key=...``), with
    ``status`` one status or several, and ``meta`` matching when the keys it
    names have those values. Jobs of every status count, finished ones too.
    """
    unknown = sorted(set(filters) - set(JOB_FIELDS))
    if unknown:
        raise TypeError(f"enqueued: unknown field {', '.join(unknown)}; one of {JOB_FIELDS}")
    status = filters.get("status")
    for one in [status] if isinstance(status, str) else (status or ()):
        check_status(one)
    base: dict[str, Any] = {"queue": queue, "task": _task_name(task), "limit": PAGE}
    if isinstance(status, str):
        base["status"] = status
    jobs: list[Job] = []
    before: int | None = None
    while True:
        page = app.list_jobs(**base, before_id=before)
        jobs += [j for j in page if _matches(j, filters)]
        if len(page) < PAGE:
            return jobs[::-1]
        before = page[-1].id


def _describe(task: Any, queue: str | None, filters: Mapping[str, Any]) -> str:
    parts = [f"task={_task_name(task)!r}"] if task is not None else []
    parts += [f"queue={queue!r}"] if queue is not None else []
    parts += [f"{k}={v!r}" for k, v in filters.items()]
    return ", ".join(parts) or "any job"


def _listing(jobs: Sequence[Job], limit: int = 10) -> str:
    lines = [f"  #{j.id} {j.task} queue={j.queue} status={j.status} args={j.args!r} "
             f"kwargs={j.kwargs!r} meta={j.meta!r}" for j in jobs[:limit]]  # fmt: skip
    if len(jobs) > limit:
        lines.append(f"  ... and {len(jobs) - limit} more")
    return "\n".join(lines) or "  (none)"


def assert_enqueued(
    app: App,
    task: Task[Any, Any] | TaskOptions[Any, Any] | str | None = None,
    queue: str | None = None,
    *,
    count: int | None = None,
    **filters: Any,
) -> list[Job]:
    """Assert that jobs matching (see ``enqueued``) exist, ``count`` of them if
    given; return them. The ``AssertionError`` lists the jobs of that task."""
    jobs = enqueued(app, task, queue, **filters)
    if jobs and (count is None or len(jobs) == count):
        return jobs
    wanted = "a job" if count is None else f"{count} job(s)"
    near = enqueued(app, task) if task is not None else enqueued(app, queue=queue)
    raise AssertionError(
        f"expected {wanted} matching {_describe(task, queue, filters)}; found {len(jobs)}. "
        f"Jobs of {'that task' if task is not None else 'that queue'}:\n{_listing(near)}"
    )


def refute_enqueued(
    app: App,
    task: Task[Any, Any] | TaskOptions[Any, Any] | str | None = None,
    queue: str | None = None,
    **filters: Any,
) -> None:
    """Assert that no job matches (see ``enqueued``)."""
    jobs = enqueued(app, task, queue, **filters)
    if jobs:
        raise AssertionError(
            f"expected no job matching {_describe(task, queue, filters)}; "
            f"found {len(jobs)}:\n{_listing(jobs)}"
        )


# -- running what was enqueued ----------------------------------------------------------


def drain(
    app: App,
    queues: str | Iterable[str] | None = None,
    *,
    include_scheduled: bool = False,
    concurrency: int = 10,
    timeout: float | None = None,
) -> int:
    """Run every ready job of ``queues`` to completion with a real worker, in
    this process; return how many attempts ran.

    ``queues``: names (a list or ``"a,b"``); default: every queue the app's
    tasks use or a waiting job names. Jobs enqueued by the jobs run too.
    Without ``include_scheduled``, jobs due later and retries wait (a retry
    that comes due while other jobs still run may run); with it, they are
    made due at once, so every job ends finished (retries exhaust their
    attempts without waiting). ``timeout``: seconds before the worker is
    aborted (its running jobs released) and ``TimeoutError`` raised. Call
    ``drain_async`` under a running loop.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(drain_async(app, queues, include_scheduled=include_scheduled,
                                       concurrency=concurrency, timeout=timeout))  # fmt: skip
    raise RuntimeError("drain() was called inside a running event loop: await drain_async()")


async def drain_async(
    app: App,
    queues: str | Iterable[str] | None = None,
    *,
    include_scheduled: bool = False,
    concurrency: int = 10,
    timeout: float | None = None,
) -> int:
    """``drain`` on the running event loop (sync tasks on the worker's threads)."""
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    conn = await app.database.connect_async()
    try:
        names = await _drain_queues(app, conn, queues)
        config = WorkerConfig(
            queues=names, concurrency=concurrency, until_empty=True, rescue=False,
            scheduler=False, pruner=False, install_signal_handlers=False,
            worker_id=f"pgqueue.testing.drain:{id(conn):x}",
        )  # fmt: skip
        worker = Worker(app.database, app.registry, config)
        run = asyncio.ensure_future(worker.run_async())
        try:
            while not run.done():
                await asyncio.wait({run}, timeout=DRAIN_TICK)
                if run.done():
                    break
                if deadline is not None and loop.time() > deadline:
                    raise TimeoutError(f"drain: jobs still running after {timeout}s")
                if include_scheduled:
                    await _fetch(app, conn, "testing_make_due", names)
                elif (
                    not worker.running
                    and not (await _fetch(app, conn, "testing_busy", names))[0][0]
                ):
                    worker.stop()
            await run
        finally:
            if not run.done():
                worker.abort()
                await asyncio.wait({run})
        return worker.processed
    finally:
        await conn.close()


async def _fetch(app: App, conn: Any, name: str, queues: Sequence[str]) -> list[Any]:
    def op() -> Any:
        rows = yield Statement(query(name), {"queues": list(queues)})
        return rows

    return await app.database.run_async(op(), connection=conn)


async def _drain_queues(app: App, conn: Any, queues: str | Iterable[str] | None) -> tuple[str, ...]:
    if isinstance(queues, str):
        return tuple(q.strip() for q in queues.split(",") if q.strip())
    if queues is not None:
        return tuple(queues)
    waiting = [r[0] for r in await _fetch(app, conn, "testing_waiting_queues", ())]
    return tuple(sorted({"default", *app.registry.queues(), *waiting}))
