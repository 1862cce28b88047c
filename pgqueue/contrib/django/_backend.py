"""``PgQueueBackend``: Django's tasks framework on pgqueue.

A ``@task`` function becomes a pgqueue task named by its module path
(``shop.tasks.send_receipt``); ``enqueue()`` inserts one ``pgqueue.jobs`` row
and returns a ``TaskResult`` whose id is the job's id; ``get_result()`` reads
the row back. Statuses map as:

=====================================  ===========
pgqueue                                Django
=====================================  ===========
queued, blocked, failed (will retry)   READY
running                                RUNNING
succeeded                              SUCCESSFUL
dead, cancelled                        FAILED
=====================================  ===========

With no ``DSN`` option, pgqueue lives in the Django database named by
``DATABASE`` (``"default"``) and ``enqueue()`` runs on Django's own connection:
inside ``transaction.atomic()`` the job commits or rolls back with the block.

Django creates a backend object per thread; what they share (the ``App``, its
pools, the tasks seen so far) is kept per backend alias in this module.
"""

from __future__ import annotations

import builtins
import contextlib
import threading
from typing import Any

import psycopg
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.utils.module_loading import autodiscover_modules, import_string
from psycopg.conninfo import make_conninfo

import pgqueue
from pgqueue.contrib.django._compat import (
    BaseTaskBackend,
    InvalidTask,
    Task,
    TaskError,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultStatus,
    task_enqueued,
)
from pgqueue.contrib.django._runner import make_runner

OPTIONS = frozenset({"DSN", "DATABASE", "MAX_ATTEMPTS", "MAX_CONNECTIONS", "MODULES"})

STATUSES = {
    "queued": TaskResultStatus.READY,
    "blocked": TaskResultStatus.READY,
    "failed": TaskResultStatus.READY,  # an attempt failed; the retry is waiting
    "running": TaskResultStatus.RUNNING,
    "succeeded": TaskResultStatus.SUCCESSFUL,
    "dead": TaskResultStatus.FAILED,
    "cancelled": TaskResultStatus.FAILED,
}

# Per backend alias: the App, and every Django task validated for it (by module path).
_lock = threading.RLock()
_apps: dict[str, pgqueue.App] = {}
_tasks: dict[str, dict[str, Any]] = {}


class PgQueueBackend(BaseTaskBackend):  # type: ignore[misc]
    """``TASKS = {"default": {"BACKEND": "pgqueue.contrib.django.PgQueueBackend"}}``.

    ``OPTIONS``: ``DSN`` (pgqueue in a database of its own: no transactional
    enqueue), ``DATABASE`` (the Django database alias pgqueue lives in, default
    ``"default"``), ``MAX_ATTEMPTS`` (per job, default 1: a task that raises is
    FAILED, as Django expects; more retries with backoff), ``MAX_CONNECTIONS``
    (pgqueue's own pool, default 10), ``MODULES`` (task modules the worker
    imports besides each installed app's ``tasks`` module).
    """

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        options: dict[str, Any] = dict(params.get("OPTIONS", {}))
        unknown = sorted(set(options) - OPTIONS)
        if unknown:
            raise ImproperlyConfigured(
                f"TASKS[{alias!r}]['OPTIONS']: unknown option(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(OPTIONS))}"
            )
        self.dsn: str | None = options.get("DSN")
        self.database: str = options.get("DATABASE", "default")
        self.max_attempts = _whole(alias, options, "MAX_ATTEMPTS", 1)
        self.max_connections = _whole(alias, options, "MAX_CONNECTIONS", 10)
        self.modules: tuple[str, ...] = tuple(options.get("MODULES", ()))

    # -- the pgqueue side ----------------------------------------------------------

    @property
    def app(self) -> pgqueue.App:
        """The pgqueue ``App`` of this backend alias (shared by every thread)."""
        with _lock:
            app = _apps.get(self.alias)
            if app is None:
                app = pgqueue.App(self.connection_dsn(), max_connections=self.max_connections)
                _apps[self.alias] = app
                for name, task in _tasks.get(self.alias, {}).items():
                    self._register(app, name, task)
            return app

    def connection_dsn(self) -> str:
        """The DSN of pgqueue's database: ``DSN``, else that of Django's ``DATABASE``."""
        if self.dsn:
            return self.dsn
        conn = self._django_connection()
        return django_dsn(conn.settings_dict)

    def _django_connection(self) -> Any:
        if self.database not in connections:
            raise ImproperlyConfigured(
                f"TASKS[{self.alias!r}]: DATABASE {self.database!r} is not in DATABASES"
            )
        conn = connections[self.database]
        if conn.vendor != "postgresql":
            raise ImproperlyConfigured(
                f"TASKS[{self.alias!r}]: database {self.database!r} is {conn.vendor}, "
                "not PostgreSQL; give pgqueue a DSN of its own"
            )
        return conn

    def _register(self, app: pgqueue.App, name: str, task: Any) -> None:
        if app.registry.get(name) is None:
            alias = self.alias
            run = make_runner(lambda: _current_task(alias, name), alias)
            app.registry.register(run, {"name": name, "max_attempts": self.max_attempts})

    def validate_task(self, task: Any) -> None:
        super().validate_task(task)
        # Called for every Task made for this backend (at import of its module, and
        # by .using()): the worker learns the tasks it may run here.
        with _lock:
            _tasks.setdefault(self.alias, {})[task.module_path] = task
            app = _apps.get(self.alias)
            if app is not None:
                self._register(app, task.module_path, task)

    def discover(self) -> None:
        """Import each installed app's ``tasks`` module and the ``MODULES`` option's."""
        autodiscover_modules("tasks")
        for module in self.modules:
            __import__(module)

    def close(self) -> None:
        """Close this alias's pgqueue pools (say, before a test database is dropped)."""
        with _lock:
            app = _apps.pop(self.alias, None)
        if app is not None:
            app.close()

    # -- Django's API ------------------------------------------------------------

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        self.validate_task(task)
        app = self.app
        job = (
            app.registry.tasks[task.module_path]
            .options(
                connection=self._enqueue_connection(),
                queue=task.queue_name,
                priority=task.priority,
                run_at=task.run_after,
            )
            .enqueue(*args, **kwargs)
        )
        # The row came back through Django's connection, whose loaders differ from
        # pgqueue's (jsonb as text): the arguments are the caller's own.
        job.args, job.kwargs = list(args), dict(kwargs)
        result = self._result(job, task)
        task_enqueued.send(sender=type(self), task_result=result)
        return result

    def _enqueue_connection(self) -> psycopg.Connection[Any] | None:
        """Django's psycopg connection (joining its transaction), or None (own pool)."""
        if self.dsn:
            return None
        conn = self._django_connection()
        conn.ensure_connection()
        raw = conn.connection
        if not isinstance(raw, psycopg.Connection):
            raise ImproperlyConfigured(
                f"TASKS[{self.alias!r}]: Django's database {self.database!r} runs on "
                f"{type(raw).__module__}; pgqueue joins its transactions on psycopg 3 only"
            )
        return raw

    def get_result(self, result_id: str) -> Any:
        try:
            job = self.app.get_job(int(result_id))
        except (ValueError, pgqueue.JobNotFound):
            raise TaskResultDoesNotExist(result_id) from None
        task = self._task_of(job)
        if task is None:
            raise TaskResultDoesNotExist(f"{result_id}: job of {job.task!r}, not a Django task")
        return self._result(job, task)

    def _task_of(self, job: pgqueue.Job) -> Any:
        task = _tasks.get(self.alias, {}).get(job.task)
        if task is None:
            try:
                task = import_string(job.task)
            except ImportError:
                return None
            if not isinstance(task, Task):
                return None
        if (task.queue_name, task.priority) != (job.queue, job.priority):
            with contextlib.suppress(InvalidTask):  # else the task as declared
                task = task.using(queue_name=job.queue, priority=job.priority)
        return task

    def _result(self, job: pgqueue.Job, task: Any) -> Any:
        worker_ids = [job.worker_id or ""] * job.attempts
        result = TaskResult(
            task=task,
            id=str(job.id),
            status=STATUSES[job.status],
            enqueued_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            last_attempted_at=job.started_at,
            args=job.args,
            kwargs=job.kwargs,
            backend=self.alias,
            errors=[_error(entry) for entry in job.errors or ()],
            worker_ids=worker_ids,
        )
        if job.status == "succeeded":
            object.__setattr__(result, "_return_value", job.result)
        return result


def _whole(alias: str, options: dict[str, Any], name: str, default: int) -> int:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ImproperlyConfigured(f"TASKS[{alias!r}]: {name} must be a whole number >= 1")
    return value


def close_all() -> None:
    """Close the pgqueue pools of every backend alias."""
    with _lock:
        apps = list(_apps.values())
        _apps.clear()
    for app in apps:
        app.close()


def django_dsn(settings_dict: dict[str, Any]) -> str:
    """A libpq DSN for a Django ``DATABASES`` entry (NAME, USER, ... and libpq OPTIONS)."""
    keywords = {opt.keyword.decode() for opt in psycopg.pq.Conninfo.get_defaults()}
    params: dict[str, Any] = {
        k: v for k, v in dict(settings_dict.get("OPTIONS") or {}).items()
        if k in keywords and isinstance(v, (str, int))
    }  # fmt: skip
    for key, name in (("NAME", "dbname"), ("USER", "user"), ("PASSWORD", "password"),
                      ("HOST", "host"), ("PORT", "port")):  # fmt: skip
        if settings_dict.get(key):
            params[name] = settings_dict[key]
    return make_conninfo(**params)


def _current_task(alias: str, name: str) -> Any:
    with _lock:
        return _tasks[alias][name]


def _error(entry: dict[str, Any]) -> Any:
    """A pgqueue error entry as Django's ``TaskError``."""
    path = entry.get("type")
    if not path:  # entries written before the type was recorded, or by the rescuer
        name = str(entry.get("error", "")).partition(":")[0].strip() or "Exception"
        path = f"builtins.{name}" if isinstance(getattr(builtins, name, None), type) else name
    return TaskError(exception_class_path=path, traceback=entry.get("traceback") or "")
