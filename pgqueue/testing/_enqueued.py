"""What is in the jobs table: ``enqueued``, ``assert_enqueued``, ``refute_enqueued``.

Each is an operation (see ``pgqueue._db``) written once and driven sync or
async, so the ``_async`` twins need no code of their own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pgqueue import App
from pgqueue._core import JOB_FIELDS, check_status
from pgqueue._db import Operation
from pgqueue._inspect import list_jobs
from pgqueue._job import Job
from pgqueue._task import Task, TaskOptions

PAGE = 1000  # jobs per list_jobs statement

TaskLike = Task[Any, Any] | TaskOptions[Any, Any] | str | None


def _task_name(task: TaskLike) -> str | None:
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


def _find(
    app: App, task: TaskLike, queue: str | None, filters: Mapping[str, Any]
) -> Operation[list[Job]]:
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
    while True:  # newest first, by keyset pages
        page = yield from list_jobs(app, **base, before_id=before)
        jobs += [j for j in page if _matches(j, filters)]
        if len(page) < PAGE:
            return jobs[::-1]
        before = page[-1].id


def _describe(task: TaskLike, queue: str | None, filters: Mapping[str, Any]) -> str:
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


def _assert(
    app: App, task: TaskLike, queue: str | None, count: int | None, filters: Mapping[str, Any]
) -> Operation[list[Job]]:
    jobs = yield from _find(app, task, queue, filters)
    if jobs and (count is None or len(jobs) == count):
        return jobs
    wanted = "a job" if count is None else f"{count} job(s)"
    near = yield from _find(app, task, None if task is not None else queue, {})
    raise AssertionError(
        f"expected {wanted} matching {_describe(task, queue, filters)}; found {len(jobs)}. "
        f"Jobs of {'that task' if task is not None else 'that queue'}:\n{_listing(near)}"
    )


def _refute(
    app: App, task: TaskLike, queue: str | None, filters: Mapping[str, Any]
) -> Operation[None]:
    jobs = yield from _find(app, task, queue, filters)
    if jobs:
        raise AssertionError(
            f"expected no job matching {_describe(task, queue, filters)}; "
            f"found {len(jobs)}:\n{_listing(jobs)}"
        )


def enqueued(
    app: App, task: TaskLike = None, queue: str | None = None, **filters: Any
) -> list[Job]:
    """The jobs in the database that match, oldest first.

    ``task``: a task or its name. ``filters``: any ``Job`` field by equality
    (``args=[42]``, ``kwargs={...}``, ``priority=5``, ``unique_key=...``), with
    ``status`` one status or several, and ``meta`` matching when the keys it
    names have those values. Jobs of every status count, finished ones too.
    """
    return app.database.run(_find(app, task, queue, filters))


async def enqueued_async(
    app: App, task: TaskLike = None, queue: str | None = None, **filters: Any
) -> list[Job]:
    return await app.database.run_async(_find(app, task, queue, filters))


def assert_enqueued(
    app: App, task: TaskLike = None, queue: str | None = None, *, count: int | None = None,
    **filters: Any,
) -> list[Job]:  # fmt: skip
    """Assert that jobs matching (see ``enqueued``) exist, ``count`` of them if
    given; return them. The ``AssertionError`` lists the jobs of that task."""
    return app.database.run(_assert(app, task, queue, count, filters))


async def assert_enqueued_async(
    app: App, task: TaskLike = None, queue: str | None = None, *, count: int | None = None,
    **filters: Any,
) -> list[Job]:  # fmt: skip
    return await app.database.run_async(_assert(app, task, queue, count, filters))


def refute_enqueued(
    app: App, task: TaskLike = None, queue: str | None = None, **filters: Any
) -> None:
    """Assert that no job matches (see ``enqueued``)."""
    app.database.run(_refute(app, task, queue, filters))


async def refute_enqueued_async(
    app: App, task: TaskLike = None, queue: str | None = None, **filters: Any
) -> None:
    await app.database.run_async(_refute(app, task, queue, filters))
