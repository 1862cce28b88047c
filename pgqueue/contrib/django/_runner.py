"""What pgqueue's worker runs for a Django task: the call, its context, Django's signals.

Each attempt sends ``task_started`` (status RUNNING) and ``task_finished``
(SUCCESSFUL; FAILED when no attempt is left or the task raised
``pgqueue.Discard``; READY when pgqueue will retry it), as Django's own
backends do; ``takes_context`` tasks get a ``TaskContext`` holding that same
result (``context.attempt`` is the job's attempt). Nothing here reads the
database: the result is built from the job the worker is running.
"""

from __future__ import annotations

import inspect
import os
import socket
import traceback
from collections.abc import Callable
from typing import Any

from django.db import close_old_connections
from django.utils import timezone

import pgqueue
from pgqueue.contrib.django._compat import (
    TaskContext,
    TaskError,
    TaskResult,
    TaskResultStatus,
    normalize_json,
    task_finished,
    task_started,
)

WORKER = f"{socket.gethostname()}:{os.getpid()}"


def make_runner(get_task: Callable[[], Any], alias: str) -> Callable[..., Any]:
    """The function registered with pgqueue for one Django task (sync or async)."""

    def run(*args: Any, **kwargs: Any) -> Any:
        task = get_task()
        result = _started(task, alias, args, kwargs)
        # Like around a request: connections past CONN_MAX_AGE (or broken) are closed.
        close_old_connections()
        try:
            value = normalize_json(task.func(*_arguments(task, result, args), **kwargs))
        except Exception as exc:
            _failed(task, result, exc)
            raise
        finally:
            close_old_connections()
        _succeeded(task, result, value)
        return value

    async def run_async(*args: Any, **kwargs: Any) -> Any:
        task = get_task()
        result = _started(task, alias, args, kwargs)
        try:
            value = normalize_json(await task.func(*_arguments(task, result, args), **kwargs))
        except Exception as exc:
            _failed(task, result, exc)
            raise
        _succeeded(task, result, value)
        return value

    return run_async if inspect.iscoroutinefunction(get_task().func) else run


def _arguments(task: Any, result: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
    return (TaskContext(task_result=result), *args) if task.takes_context else args


def _started(task: Any, alias: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    job = pgqueue.current_job()
    now = timezone.now()
    result = TaskResult(
        task=task,
        id=str(job.id) if job is not None else "",
        status=TaskResultStatus.RUNNING,
        enqueued_at=None,
        started_at=now,
        finished_at=None,
        last_attempted_at=now,
        args=list(args),
        kwargs=dict(kwargs),
        backend=alias,
        errors=[],
        worker_ids=[WORKER] * (job.attempt if job is not None else 1),
    )
    task_started.send(sender=type(task.get_backend()), task_result=result)
    return result


def _succeeded(task: Any, result: Any, value: Any) -> None:
    object.__setattr__(result, "status", TaskResultStatus.SUCCESSFUL)
    object.__setattr__(result, "finished_at", timezone.now())
    object.__setattr__(result, "_return_value", value)
    task_finished.send(sender=type(task.get_backend()), task_result=result)


def _failed(task: Any, result: Any, exc: Exception) -> None:
    """Called inside the except block, so receivers see ``sys.exc_info()``."""
    job = pgqueue.current_job()
    final = isinstance(exc, pgqueue.Discard) or job is None or job.attempt >= job.max_attempts
    object.__setattr__(
        result, "status", TaskResultStatus.FAILED if final else TaskResultStatus.READY
    )
    object.__setattr__(result, "finished_at", timezone.now())
    result.errors.append(TaskError(
        exception_class_path=f"{type(exc).__module__}.{type(exc).__qualname__}",
        traceback="".join(traceback.format_exception(exc)),
    ))  # fmt: skip
    task_finished.send(sender=type(task.get_backend()), task_result=result)
