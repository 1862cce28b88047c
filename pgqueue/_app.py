"""``pgqueue.App``: the facade, a ``Database`` and a ``Registry`` with thin delegations.

Nothing below this module imports it: operations take the database (and the
registry), the worker and the maintenance loops take both, and ``Task`` and
``Job`` reach their owner through the protocols of ``_protocols``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar, overload

from psycopg_pool import AsyncConnectionPool, ConnectionPool
from typing_extensions import Self

from pgqueue import _admin, _canvas, _enqueue, _flows, _inspect, _linked, _queues, _schedules, _wait
from pgqueue._app_graph import GraphReads
from pgqueue._app_workflows import WorkflowsMixin
from pgqueue._core import DEFAULT_MAX_PAYLOAD, JobSpec, RetryPolicy
from pgqueue._db import Database, DatabaseConfig
from pgqueue._errors import ConfigurationError
from pgqueue._job import Job
from pgqueue._keys import JOBS_CHANNEL
from pgqueue._queues import QueueSettings
from pgqueue._registry import DEFAULT_LEASE, Registry
from pgqueue._schedule import Schedule
from pgqueue._spec import import_object
from pgqueue._task import Task

F = TypeVar("F", bound=Callable[..., Any])
M = TypeVar("M")

__all__ = ["JOBS_CHANNEL", "App"]


class App(WorkflowsMixin, GraphReads):
    """The entry point: declares tasks, enqueues and inspects jobs, runs workers.

    The DSN comes from ``dsn``, else ``$PGQUEUE_DSN``, else ``$DATABASE_URL``,
    else a local embedded PostgreSQL under ``./.pgqueue/`` (development only).
    ``app.database`` is the connection side (pools, dedicated connections),
    ``app.registry`` the task side (tasks, schedules, defaults).
    """

    __module__ = "pgqueue"

    def __init__(
        self,
        dsn: str | None = None,
        *,
        min_connections: int = 1,
        max_connections: int = 10,
        retry: RetryPolicy | None = None,
        lease: float = DEFAULT_LEASE,
        connect_timeout: float = 5.0,
        prepare: bool = True,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
    ) -> None:
        self.database = Database(DatabaseConfig(
            dsn=dsn, min_connections=min_connections, max_connections=max_connections,
            connect_timeout=connect_timeout, prepare=prepare,
        ))  # fmt: skip
        self.registry = Registry(self, retry=retry, lease=lease, max_payload=max_payload)

    def __repr__(self) -> str:
        return f"<pgqueue.App {self.database!r} tasks={len(self.registry.tasks)}>"

    @classmethod
    def from_spec(cls, spec: str, *, dsn: str | None = None) -> App:
        """Import ``"package.module:attribute"`` (an App); ``dsn`` overrides its DSN.

        Raises ``ConfigurationError`` with one line for a spec that does not
        name an App (the CLI prints it as is).
        """
        obj = import_object(spec)
        if not isinstance(obj, App):
            raise ConfigurationError(f"{spec!r} is not a pgqueue.App")
        if dsn:
            obj.use_dsn(dsn)
        return obj

    def use_dsn(self, dsn: str) -> None:
        """Point this app at another database (before it has connected)."""
        self.database = self.database.with_dsn(dsn)

    # -- configuration (shortcuts to the two ports) ------------------------------

    @property
    def dsn(self) -> str:
        """The resolved DSN (``database.resolve()``: starts the embedded server
        when none is configured)."""
        return self.database.resolve()

    @property
    def tasks(self) -> dict[str, Task[Any, Any]]:
        return self.registry.tasks

    @property
    def schedules(self) -> dict[str, Schedule]:
        return self.registry.schedules

    @property
    def retry(self) -> RetryPolicy:
        return self.registry.retry

    @property
    def lease(self) -> float:
        return self.registry.lease

    def connect_kwargs(self) -> dict[str, Any]:
        return self.database.connect_kwargs()

    def pool(self) -> ConnectionPool[Any]:
        return self.database.pool()

    async def pool_async(self) -> AsyncConnectionPool[Any]:
        return await self.database.pool_async()

    def close(self) -> None:
        """Close the sync pool (the async pool needs ``close_async``)."""
        self.database.close()

    async def close_async(self) -> None:
        await self.database.close_async()

    aclose = close_async  # the earlier name

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close_async()

    # -- tasks -------------------------------------------------------------

    @overload
    def task(self, fn: F, /) -> Task[Any, Any]: ...
    @overload
    def task(
        self,
        *,
        name: str | None = None,
        queue: str = "default",
        priority: int = 0,
        max_attempts: int = 3,
        timeout: float | None = None,
        lease: float | None = None,
        retry: RetryPolicy | None = None,
        transactional: bool = False,
        unique_scope: str = "task",
    ) -> Callable[[F], Task[Any, Any]]: ...

    def task(self, fn: Any = None, /, **options: Any) -> Any:  # type: ignore[misc]
        """Register a function (sync or async) as a task: ``@app.task`` or ``@app.task(...)``."""
        if fn is not None:
            return self.registry.register(fn, options)
        return lambda func: self.registry.register(func, options)

    def task_ref(self, name: str, *, queue: str = "default", priority: int = 0,
                 max_attempts: int = 3) -> Task[Any, Any]:  # fmt: skip
        """A task known only by name, for producers that don't import the task code."""
        return self.registry.ref(name, queue=queue, priority=priority, max_attempts=max_attempts)

    # -- enqueue ---------------------------------------------------------------

    def add_middleware(self, middleware: M) -> M:
        """Hook ``middleware`` around enqueue and execution (see ``pgqueue.Middleware``);
        returns it. The first added is the outermost; add it before starting workers."""
        self.registry.hooks.add(middleware)
        return middleware

    def remove_middleware(self, middleware: Any) -> None:
        self.registry.hooks.remove(middleware)

    def enqueue_one(self, spec: JobSpec, *, connection: Any = None) -> Job:
        """Insert one job (what ``task.enqueue`` does): one short statement."""
        if spec.depends_on or spec.needs_result is not None:
            return self.enqueue_many([spec], connection=connection)[0]
        if self.registry.hooks:  # middleware, or eager mode (pgqueue.testing)
            return self.registry.hooks.enqueue([spec], connection, self._insert)[0]
        return self._insert_one(spec, connection)

    async def enqueue_one_async(self, spec: JobSpec, *, connection: Any = None) -> Job:
        if spec.depends_on or spec.needs_result is not None:
            return (await self.enqueue_many_async([spec], connection=connection))[0]
        if self.registry.hooks:
            return (await self.registry.hooks.enqueue_async([spec], connection,
                                                            self._insert_async))[0]  # fmt: skip
        return await self._insert_one_async(spec, connection)

    def enqueue_many(self, jobs: Iterable[JobSpec], *, connection: Any = None) -> list[Job]:
        """Insert many jobs in one transaction (COPY for big batches); returns them in order.

        A job whose ``unique_key`` is held by an unfinished job is not inserted:
        the existing job is returned in its place. A job may depend on an
        earlier one of the batch (``options(depends_on=[spec])``).
        """
        specs = _check_specs(jobs)
        if _linked.has_links(specs):
            specs = _linked.link(specs)  # before middleware, which may copy specs
        if self.registry.hooks:
            return self.registry.hooks.enqueue(specs, connection, self._insert)
        return self._insert(specs, connection)

    async def enqueue_many_async(
        self, jobs: Iterable[JobSpec], *, connection: Any = None
    ) -> list[Job]:
        specs = _check_specs(jobs)
        if _linked.has_links(specs):
            specs = _linked.link(specs)  # before middleware, which may copy specs
        if self.registry.hooks:
            return await self.registry.hooks.enqueue_async(specs, connection, self._insert_async)
        return await self._insert_async(specs, connection)

    def _insert_one(self, spec: JobSpec, connection: Any) -> Job:
        return _enqueue.insert_one(self.database, self.registry, self, spec, connection)

    async def _insert_one_async(self, spec: JobSpec, connection: Any) -> Job:
        return await _enqueue.insert_one_async(self.database, self.registry, self, spec, connection)

    def _insert(self, specs: list[JobSpec], connection: Any, flow: bool = False) -> list[Job]:
        return _enqueue.insert(self.database, self.registry, self, specs, connection, flow=flow)

    async def _insert_async(
        self, specs: list[JobSpec], connection: Any, flow: bool = False
    ) -> list[Job]:
        return await _enqueue.insert_async(
            self.database, self.registry, self, specs, connection, flow=flow
        )

    # -- flows (pgqueue.chain, group, chord) -----------------------------------

    def enqueue_flow(self, flow: _canvas.Node, *, connection: Any = None) -> _flows.FlowHandle:
        """Insert every job of ``flow`` in one transaction (``connection``'s, if given)."""
        specs, tails = _linked.flow_specs(flow)  # raises before any I/O
        insert = functools.partial(self._insert, flow=True)
        jobs = self.registry.hooks.enqueue(specs, connection, insert)
        return _flows.FlowHandle(jobs, [jobs[i].id for i in tails], self.database, self)

    async def enqueue_flow_async(
        self, flow: _canvas.Node, *, connection: Any = None
    ) -> _flows.FlowHandle:
        specs, tails = _linked.flow_specs(flow)
        insert = functools.partial(self._insert_async, flow=True)
        jobs = await self.registry.hooks.enqueue_async(specs, connection, insert)
        return _flows.FlowHandle(jobs, [jobs[i].id for i in tails], self.database, self)

    def get_flow(self, flow_id: int) -> _flows.FlowHandle:
        """The jobs of flow ``flow_id`` (``pgqueue.FlowNotFound`` if none)."""
        return self.database.run(_flows.get_flow(self.database, self, flow_id))

    async def get_flow_async(self, flow_id: int) -> _flows.FlowHandle:
        return await self.database.run_async(_flows.get_flow(self.database, self, flow_id))

    # -- inspection ----------------------------------------------------------

    def get_job(self, job_id: int) -> Job:
        return self.database.run(_inspect.get_job(self, job_id))

    async def get_job_async(self, job_id: int) -> Job:
        return await self.database.run_async(_inspect.get_job(self, job_id))

    def list_jobs(self, **filters: Any) -> list[Job]:
        """Jobs, newest first: ``queue``, ``task``, ``status``, ``older_than``
        (minimum age, seconds), ``before_id`` (keyset paging), ``limit`` (100)."""
        return self.database.run(_inspect.list_jobs(self, **filters))

    async def list_jobs_async(self, **filters: Any) -> list[Job]:
        return await self.database.run_async(_inspect.list_jobs(self, **filters))

    def wait_for(self, job_id: int, *, timeout: float | None = None) -> Any:
        """Wait (on LISTEN, with a slow re-check) until the job finishes."""
        return _wait.wait_for(self.database, self, job_id, timeout)

    async def wait_for_async(self, job_id: int, *, timeout: float | None = None) -> Any:
        return await _wait.wait_for_async(self.database, self, job_id, timeout)

    # -- operations ------------------------------------------------------------

    def retry_jobs(self, ids: Iterable[int]) -> _admin.Retried:
        """Requeue failed, dead or cancelled jobs now; returns the ids requeued."""
        return self.database.run(_admin.retry_jobs(ids))

    async def retry_jobs_async(self, ids: Iterable[int]) -> _admin.Retried:
        return await self.database.run_async(_admin.retry_jobs(ids))

    def cancel_jobs(self, ids: Iterable[int]) -> dict[str, list[int]]:
        """Cancel waiting jobs; ask the workers running the others to stop them."""
        return self.database.run(_admin.cancel_jobs(ids))

    async def cancel_jobs_async(self, ids: Iterable[int]) -> dict[str, list[int]]:
        return await self.database.run_async(_admin.cancel_jobs(ids))

    def replay_dead(self, **filters: Any) -> _admin.Replayed:
        """Requeue dead jobs (``queue``, ``task``, ``since``, ``batch_size``, ``limit``)."""
        return self.database.run(_admin.replay_dead(**filters))

    async def replay_dead_async(self, **filters: Any) -> _admin.Replayed:
        return await self.database.run_async(_admin.replay_dead(**filters))

    def purge(self, **filters: Any) -> int:
        """Delete jobs by ``statuses``, ``queue``, ``task``, ``older_than`` (at least one)."""
        return self.database.run(_admin.purge(**filters))

    async def purge_async(self, **filters: Any) -> int:
        return await self.database.run_async(_admin.purge(**filters))

    def queue_stats(self) -> list[dict[str, Any]]:
        """Per queue: queued, scheduled, running, retrying, dead, throughput, oldest age."""
        return self.database.run(_admin.queue_stats())

    async def queue_stats_async(self) -> list[dict[str, Any]]:
        return await self.database.run_async(_admin.queue_stats())

    # -- schedules -------------------------------------------------------------

    def cron(
        self,
        expr: str,
        *,
        name: str | None = None,
        timezone: str = "UTC",
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        queue: str | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
        missed: str = "latest",
        max_catchup: int = 10,
        grace_seconds: float = 60.0,
    ) -> Callable[[Any], Task[Any, Any]]:
        """Declare a schedule for the decorated task (a plain function becomes a task).

        ``expr``: 5 cron fields, or 6 with a leading seconds field. ``missed``:
        ``skip``, ``latest`` or ``all`` (bounded by ``max_catchup``); a fire at
        most ``grace_seconds`` late counts as on time. ``name`` defaults to the
        task's. Upserted into ``pgqueue.schedules`` by ``sync_schedules()``.
        """
        options = dict(name=name, timezone=timezone, args=tuple(args), kwargs=kwargs or {},
                       queue=queue, priority=priority, max_attempts=max_attempts, missed=missed,
                       max_catchup=max_catchup, grace_seconds=grace_seconds)  # fmt: skip

        def decorate(target: Any) -> Task[Any, Any]:
            task = target if isinstance(target, Task) else self.registry.task_of(target)
            task = task or self.task(target)
            self.registry.declare(task, expr, dict(options))
            return task

        return decorate

    def schedule(self, task: Task[Any, Any] | str, *, cron: str, **options: Any) -> Schedule:
        """Declare a schedule in code for a task (or a task name); see ``cron``."""
        return self.registry.declare(task, cron, options)

    def sync_schedules(self, *, disable_undeclared: bool | None = None) -> _schedules.SyncResult:
        """Upsert declared schedules; disable (not delete) those no longer declared
        (by default only when this app declares at least one)."""
        op = _schedules.sync(self.registry.declared(), disable_undeclared=disable_undeclared)
        return self.database.run(op, transaction=True)

    async def sync_schedules_async(
        self, *, disable_undeclared: bool | None = None
    ) -> _schedules.SyncResult:
        op = _schedules.sync(self.registry.declared(), disable_undeclared=disable_undeclared)
        return await self.database.run_async(op, transaction=True)

    def add_schedule(
        self, name: str, *, cron: str, task: str, replace: bool = False, **options: Any
    ) -> Schedule:
        """Add a schedule at runtime, no deploy (``sync_schedules`` leaves it alone)."""
        op = _schedules.add(self.registry, name, cron, task, options, replace_existing=replace)
        return self.database.run(op, transaction=True)

    async def add_schedule_async(
        self, name: str, *, cron: str, task: str, replace: bool = False, **options: Any
    ) -> Schedule:
        op = _schedules.add(self.registry, name, cron, task, options, replace_existing=replace)
        return await self.database.run_async(op, transaction=True)

    def list_schedules(self) -> list[Schedule]:
        return self.database.run(_schedules.list_all())

    async def list_schedules_async(self) -> list[Schedule]:
        return await self.database.run_async(_schedules.list_all())

    def get_schedule(self, name: str) -> Schedule:
        return self.database.run(_schedules.get(name))

    async def get_schedule_async(self, name: str) -> Schedule:
        return await self.database.run_async(_schedules.get(name))

    def pause_schedule(self, name: str) -> None:
        self.database.run(_schedules.pause(name))

    async def pause_schedule_async(self, name: str) -> None:
        await self.database.run_async(_schedules.pause(name))

    def resume_schedule(self, name: str) -> Schedule:
        """Enable again from the next fire after now (the pause is not caught up)."""
        return self.database.run(_schedules.resume(name), transaction=True)

    async def resume_schedule_async(self, name: str) -> Schedule:
        return await self.database.run_async(_schedules.resume(name), transaction=True)

    def remove_schedule(self, name: str) -> None:
        self.database.run(_schedules.remove(name))

    async def remove_schedule_async(self, name: str) -> None:
        await self.database.run_async(_schedules.remove(name))

    def run_schedule_now(self, name: str) -> Job:
        """Enqueue the schedule's job once, now; its timetable is unchanged."""
        spec = _schedules.run_now_spec(self.get_schedule(name))
        return self.enqueue_many([spec])[0]

    async def run_schedule_now_async(self, name: str) -> Job:
        spec = _schedules.run_now_spec(await self.get_schedule_async(name))
        return (await self.enqueue_many_async([spec]))[0]

    # -- queue controls --------------------------------------------------------

    def pause_queue(self, name: str) -> QueueSettings:
        """Stop every worker on every host from claiming jobs of this queue."""
        return self.set_queue(name, paused=True)

    async def pause_queue_async(self, name: str) -> QueueSettings:
        return await self.set_queue_async(name, paused=True)

    def resume_queue(self, name: str) -> QueueSettings:
        return self.set_queue(name, paused=False)

    async def resume_queue_async(self, name: str) -> QueueSettings:
        return await self.set_queue_async(name, paused=False)

    def set_queue(self, name: str, **settings: Any) -> QueueSettings:
        """Set ``max_running``, ``rate_limit``/``rate_period``, ``max_depth``,
        ``retention``, ``dead_retention`` (seconds); ``clear=("max_depth",)`` unsets."""
        return self.database.run(_queues.set_queue(name, **settings), transaction=True)

    async def set_queue_async(self, name: str, **settings: Any) -> QueueSettings:
        return await self.database.run_async(_queues.set_queue(name, **settings),
                                             transaction=True)  # fmt: skip

    def list_queues(self) -> list[QueueSettings]:
        return self.database.run(_queues.list_queues())

    async def list_queues_async(self) -> list[QueueSettings]:
        return await self.database.run_async(_queues.list_queues())

    # -- worker ------------------------------------------------------------------

    def run_worker(
        self,
        queues: str | Sequence[str] | None = None,
        *,
        concurrency: int = 10,
        processes: int = 1,
        until_empty: bool = False,
        **options: Any,
    ) -> int:
        """Run a worker until stopped (or, ``until_empty``, drained); returns its exit code.

        ``queues`` in priority order (``"critical,default"`` or a list; ``"a:3,b:1"``
        for weighted fairness); other options: see ``pgqueue.worker.WorkerConfig``.
        """
        from pgqueue.worker import run_worker

        config = _worker_config(queues, concurrency, processes, until_empty, options)
        return run_worker(self.database, self.registry, config)

    async def run_worker_async(
        self,
        queues: str | Sequence[str] | None = None,
        *,
        concurrency: int = 10,
        until_empty: bool = False,
        **options: Any,
    ) -> int:
        """``run_worker`` on the running event loop (one process)."""
        from pgqueue.worker import run_worker_async

        config = _worker_config(queues, concurrency, 1, until_empty, options)
        return await run_worker_async(self.database, self.registry, config)


def _worker_config(
    queues: str | Sequence[str] | None,
    concurrency: int,
    processes: int,
    until_empty: bool,
    options: dict[str, Any],
) -> Any:
    from pgqueue.worker import WorkerConfig, parse_queues

    if isinstance(queues, str):
        names, weights = parse_queues(queues)
        options.setdefault("weights", weights)
    else:
        names = tuple(queues) if queues is not None else None
    return WorkerConfig(queues=names, concurrency=concurrency, processes=processes,
                        until_empty=until_empty, **options)  # fmt: skip


def _check_specs(jobs: Iterable[Any]) -> list[JobSpec]:
    specs = list(jobs)
    for spec in specs:
        if not isinstance(spec, JobSpec):
            raise TypeError(f"enqueue_many takes task.job(...) specs, not {type(spec).__name__}")
    return specs
