"""``pgqueue.App``: task registry, connection pools, enqueue and inspection."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar, overload

from psycopg_pool import AsyncConnectionPool, ConnectionPool

from pgqueue import _admin, _bulk, _client, _queues, _schedules, _wait
from pgqueue._config import resolve_dsn
from pgqueue._core import DEFAULT_MAX_PAYLOAD, JobSpec, RetryPolicy, enqueue_one_params
from pgqueue._errors import ConfigurationError, JobNotFound
from pgqueue._job import Job
from pgqueue._pools import PoolOwner
from pgqueue._queues import QueueSettings
from pgqueue._sql import query
from pgqueue._task import Task, TaskConfig

F = TypeVar("F", bound=Callable[..., Any])

JOBS_CHANNEL = "pgqueue_jobs"


class App(PoolOwner):
    """The entry point: declares tasks, owns the pools, enqueues and inspects jobs.

    The DSN comes from ``dsn``, else ``$PGQUEUE_DSN``, else ``$DATABASE_URL``,
    else a local embedded PostgreSQL under ``./.pgqueue/`` (development only).
    """

    __module__ = "pgqueue"

    def __init__(
        self,
        dsn: str | None = None,
        *,
        min_connections: int = 1,
        max_connections: int = 10,
        retry: RetryPolicy | None = None,
        lease: float = 30.0,
        connect_timeout: float = 5.0,
        prepare: bool = True,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
    ) -> None:
        if min_connections < 0 or max_connections < max(1, min_connections):
            raise ConfigurationError("need 0 <= min_connections <= max_connections, >= 1")
        if lease <= 0:
            raise ConfigurationError("lease must be > 0 seconds")
        if max_payload < 1:
            raise ConfigurationError("max_payload must be >= 1 byte")
        self._dsn_arg = dsn
        self._dsn: str | None = None
        self.min_connections = min_connections
        self.max_connections = max_connections
        self.retry = retry or RetryPolicy()
        self.lease = lease
        self.connect_timeout = connect_timeout
        # prepare=False suits PgBouncer in transaction pooling mode.
        self.prepare = prepare
        self.max_payload = max_payload  # bytes of a job's args + kwargs + meta as JSON
        self.tasks: dict[str, Task[Any, Any]] = {}
        self.schedules: dict[str, Any] = {}
        self._pool: ConnectionPool[Any] | None = None
        self._apool: AsyncConnectionPool[Any] | None = None
        self._lock = threading.Lock()
        self._limited: set[str] = set()  # queues seen with a max_depth (see _client)

    # -- configuration -----------------------------------------------------

    @property
    def dsn(self) -> str:
        """The resolved DSN (starts the embedded database when none is configured)."""
        if self._dsn is None:
            resolved = resolve_dsn(self._dsn_arg)
            if resolved is None:
                from pgqueue._embedded import embedded_dsn
                from pgqueue._migrate import migrate_dsn

                resolved = embedded_dsn()
                migrate_dsn(resolved)
            self._dsn = resolved
        return self._dsn

    def connect_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"connect_timeout": max(1, round(self.connect_timeout))}
        if not self.prepare:
            kwargs["prepare_threshold"] = None
        return kwargs

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
    ) -> Callable[[F], Task[Any, Any]]: ...

    def task(self, fn: Any = None, /, **options: Any) -> Any:  # type: ignore[misc]
        """Register a function (sync or async) as a task: ``@app.task`` or ``@app.task(...)``."""

        def register(func: Callable[..., Any]) -> Task[Any, Any]:
            if isinstance(func, Task) and func.fn is not None:  # stacked above @app.cron
                if self.tasks.get(func.name) is func:
                    del self.tasks[func.name]
                func = func.fn
            name = options.pop("name", None) or f"{func.__module__}.{func.__qualname__}"
            config = TaskConfig(name=name, **options)
            JobSpec(task=name, queue=config.queue, priority=config.priority,
                    max_attempts=config.max_attempts)  # fmt: skip  # validates
            if config.timeout is not None and config.timeout <= 0:
                raise ConfigurationError(f"task {name}: timeout must be > 0")
            if name in self.tasks and self.tasks[name].fn is not func:
                raise ConfigurationError(f"task name {name!r} is registered twice")
            task: Task[Any, Any] = Task(self, func, config)
            self.tasks[name] = task
            return task

        if fn is not None:
            return register(fn)
        return register

    def task_ref(self, name: str, *, queue: str = "default", priority: int = 0,
                 max_attempts: int = 3) -> Task[Any, Any]:  # fmt: skip
        """A task known only by name, for producers that don't import the task code."""
        if name in self.tasks:
            return self.tasks[name]
        config = TaskConfig(name=name, queue=queue, priority=priority, max_attempts=max_attempts)
        return Task(self, None, config)

    # -- enqueue ---------------------------------------------------------------

    def enqueue_one(self, spec: JobSpec, *, connection: Any = None) -> Job:
        """Insert one job (what ``task.enqueue`` does): one short statement."""
        params = enqueue_one_params(spec, self.max_payload)  # bad values raise before I/O
        with self._connection(connection) as conn:
            row = _client.enqueue_one_sync(conn, spec, params, self._limited)
        return Job.from_row(row, self)

    async def enqueue_one_async(self, spec: JobSpec, *, connection: Any = None) -> Job:
        params = enqueue_one_params(spec, self.max_payload)
        async with self._aconnection(connection) as conn:
            row = await _client.enqueue_one_async(conn, spec, params, self._limited)
        return Job.from_row(row, self)

    def enqueue_many(self, jobs: Iterable[JobSpec], *, connection: Any = None) -> list[Job]:
        """Insert many jobs in one transaction (COPY for big batches); returns them in order.

        A job whose ``unique_key`` is held by an unfinished job is not inserted:
        the existing job is returned in its place.
        """
        specs = list(jobs)
        self._check_specs(specs)
        if len(specs) <= 1:
            return [self.enqueue_one(s, connection=connection) for s in specs]
        batch = _bulk.prepare(specs, max_payload=self.max_payload)  # bad values raise first
        with self._connection(connection) as conn:
            return _client.enqueue_bulk_sync(conn, batch, self)

    async def enqueue_many_async(
        self, jobs: Iterable[JobSpec], *, connection: Any = None
    ) -> list[Job]:
        specs = list(jobs)
        self._check_specs(specs)
        if len(specs) <= 1:
            return [await self.enqueue_one_async(s, connection=connection) for s in specs]
        batch = _bulk.prepare(specs, max_payload=self.max_payload)
        async with self._aconnection(connection) as conn:
            return await _client.enqueue_bulk_async(conn, batch, self)

    @staticmethod
    def _check_specs(specs: Sequence[Any]) -> None:
        for spec in specs:
            if not isinstance(spec, JobSpec):
                kind = type(spec).__name__
                raise TypeError(f"enqueue_many takes task.job(...) specs, not {kind}")

    # -- inspection ----------------------------------------------------------

    def get_job(self, job_id: int) -> Job:
        with self._connection(None) as conn:
            row = conn.execute(query("get_job"), {"id": job_id}).fetchone()
        if row is None:
            raise JobNotFound(f"no job with id {job_id}")
        return Job.from_row(row, self)

    async def get_job_async(self, job_id: int) -> Job:
        async with self._aconnection(None) as conn:
            cur = await conn.execute(query("get_job"), {"id": job_id})
            row = await cur.fetchone()
        if row is None:
            raise JobNotFound(f"no job with id {job_id}")
        return Job.from_row(row, self)

    def list_jobs(
        self,
        *,
        queue: str | None = None,
        task: str | None = None,
        status: str | None = None,
        older_than: float | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[Job]:
        """Jobs, newest first, filtered by queue, task, status, minimum age (seconds)."""
        params = _client.list_params(queue, task, status, older_than, before_id, limit)
        with self._connection(None) as conn:
            rows = conn.execute(query("list_jobs"), params).fetchall()
        return [Job.from_row(r, self) for r in rows]

    async def list_jobs_async(self, **filters: Any) -> list[Job]:
        params = _client.list_params(
            filters.get("queue"), filters.get("task"), filters.get("status"),
            filters.get("older_than"), filters.get("before_id"), filters.get("limit", 100),
        )  # fmt: skip
        async with self._aconnection(None) as conn:
            cur = await conn.execute(query("list_jobs"), params)
            rows = await cur.fetchall()
        return [Job.from_row(r, self) for r in rows]

    # -- operations ------------------------------------------------------------

    def retry_jobs(self, ids: Iterable[int]) -> list[int]:
        """Requeue failed, dead or cancelled jobs now; returns the ids requeued."""
        return _admin.retry_jobs(self, ids)

    def cancel_jobs(self, ids: Iterable[int]) -> dict[str, list[int]]:
        """Cancel waiting jobs; ask the workers running the others to stop them."""
        return _admin.cancel_jobs(self, ids)

    def replay_dead(self, **filters: Any) -> int:
        """Requeue dead jobs (``queue``, ``task``, ``since``, ``batch_size``, ``limit``)."""
        return _admin.replay_dead(self, **filters)

    def purge(self, **filters: Any) -> int:
        """Delete jobs by ``statuses``, ``queue``, ``task``, ``older_than`` (at least one)."""
        return _admin.purge(self, **filters)

    def queue_stats(self) -> list[dict[str, Any]]:
        """Per queue: queued, scheduled, running, retrying, dead, throughput, oldest age."""
        return _admin.queue_stats(self)

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
            task: Task[Any, Any] | None = (
                target
                if isinstance(target, Task)
                else next((t for t in self.tasks.values() if t.fn is target), None)
            )
            task = task or self.task(target)
            _schedules.declare(self, task, expr, dict(options))
            return task

        return decorate

    def schedule(
        self, task: Task[Any, Any] | str, *, cron: str, **options: Any
    ) -> _schedules.Schedule:
        """Declare a schedule in code for a task (or a task name); see ``cron``."""
        return _schedules.declare(self, task, cron, options)

    def sync_schedules(self, *, disable_undeclared: bool | None = None) -> _schedules.SyncResult:
        """Upsert declared schedules; disable (not delete) those no longer declared
        (by default only when this app declares at least one)."""
        return _schedules.sync(self, disable_undeclared=disable_undeclared)

    def add_schedule(
        self, name: str, *, cron: str, task: str, replace: bool = False, **options: Any
    ) -> _schedules.Schedule:
        """Add a schedule at runtime, no deploy (``sync_schedules`` leaves it alone)."""
        return _schedules.add(self, name, cron, task, options, replace_existing=replace)

    def list_schedules(self) -> list[_schedules.Schedule]:
        return _schedules.list_all(self)

    def get_schedule(self, name: str) -> _schedules.Schedule:
        return _schedules.get(self, name)

    def pause_schedule(self, name: str) -> None:
        _schedules.pause(self, name)

    def resume_schedule(self, name: str) -> _schedules.Schedule:
        """Enable again from the next fire after now (the pause is not caught up)."""
        return _schedules.resume(self, name)

    def remove_schedule(self, name: str) -> None:
        _schedules.remove(self, name)

    def run_schedule_now(self, name: str) -> Job:
        """Enqueue the schedule's job once, now; its timetable is unchanged."""
        return _schedules.run_now(self, name)

    # -- queue controls --------------------------------------------------------

    def pause_queue(self, name: str) -> QueueSettings:
        """Stop every worker on every host from claiming jobs of this queue."""
        return _queues.set_queue(self, name, paused=True)

    def resume_queue(self, name: str) -> QueueSettings:
        return _queues.set_queue(self, name, paused=False)

    def set_queue(self, name: str, **settings: Any) -> QueueSettings:
        """Set ``max_running``, ``rate_limit``/``rate_period``, ``max_depth``,
        ``retention``, ``dead_retention`` (seconds); ``clear=("max_depth",)`` unsets."""
        return _queues.set_queue(self, name, **settings)

    def list_queues(self) -> list[QueueSettings]:
        return _queues.list_queues(self)

    # -- results ---------------------------------------------------------------

    def wait_for(self, job_id: int, *, timeout: float | None = None) -> Any:
        """Wait (on LISTEN, with a slow re-check) until the job finishes."""
        return _wait.wait_for(self, job_id, timeout)

    async def wait_for_async(self, job_id: int, *, timeout: float | None = None) -> Any:
        return await _wait.wait_for_async(self, job_id, timeout)

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

        return run_worker(self, _worker_config(queues, concurrency, processes, until_empty,
                                               options))  # fmt: skip

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

        return await run_worker_async(self, _worker_config(queues, concurrency, 1, until_empty,
                                                           options))  # fmt: skip


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
