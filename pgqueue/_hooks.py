"""Middleware: hooks around enqueue and around each attempt of a job.

A middleware is any object with some of these methods (``pgqueue.Middleware``
is a base class whose methods pass through)::

    on_enqueue(spec) -> spec                        each job, before it is encoded
    around_enqueue(specs, call_next) -> jobs        sync enqueue; call_next(specs) inserts
    async around_enqueue_async(specs, call_next)    async enqueue; await call_next(specs)
    around_execute(attempt, call_next) -> result    a sync task's attempt; call_next() runs it
    async around_execute_async(attempt, call_next)  an async task's; await call_next()

Each method is optional; a middleware without ``around_execute_async`` does
not see async tasks. The first middleware added is the outermost. Enqueue
hooks see a list of ``JobSpec`` (one for ``task.enqueue``, the batch for
``enqueue_many``) before JSON encoding, so a bad argument still fails before
any I/O; they add meta with ``dataclasses.replace(spec, meta={...})`` (a spec's
meta may be shared with other jobs: never mutate it). Execute hooks get an
``Attempt`` (the job's context, its arguments) and see the outcome: the
result returned by ``call_next`` or the exception it raises, which
``attempt.outcome(exc)`` maps to the status the worker records. Cron fires
(inserted by the scheduler) do not pass through enqueue hooks.

Workers plan each task once: add middleware before starting them.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pgqueue._core import JobSpec
from pgqueue._errors import Discard, JobCancelled, Suspended, WorkflowError
from pgqueue._protocols import RunningJob

if TYPE_CHECKING:
    from pgqueue._job import Job
    from pgqueue._task import Task

Insert = Callable[[list[JobSpec], Any], list["Job"]]  # (specs, connection) -> jobs
InsertAsync = Callable[[list[JobSpec], Any], Awaitable[list["Job"]]]

HOOKS = ("on_enqueue", "around_enqueue", "around_enqueue_async", "around_execute",
         "around_execute_async")  # fmt: skip


@dataclass(frozen=True)
class Attempt:
    """One attempt of a job, as execute middleware sees it.

    ``args`` and ``kwargs`` are the task's arguments as decoded from JSON (a
    transactional task's ``connection`` left out).
    """

    __module__ = "pgqueue"

    job: RunningJob  # the attempt's ``current_job()`` context
    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    @property
    def id(self) -> int:
        return self.job.id

    @property
    def task(self) -> str:
        return self.job.task

    @property
    def queue(self) -> str:
        return self.job.queue

    @property
    def attempt(self) -> int:
        return self.job.attempt

    @property
    def max_attempts(self) -> int:
        return self.job.max_attempts

    @property
    def meta(self) -> dict[str, Any]:
        return self.job.meta

    def outcome(self, exc: BaseException | None) -> str:
        """The status the worker records when the attempt ends with ``exc`` (None:
        returned): ``succeeded``, ``failed`` (a retry follows), ``dead`` or
        ``cancelled`` (also a timeout or shutdown of an async task, which are
        seen as its cancellation); ``suspended`` for a workflow that sleeps or
        waits (its job is back in its queue, the attempt not counted)."""
        if exc is None:
            return "succeeded"
        if isinstance(exc, Suspended):
            return "suspended"
        if isinstance(exc, (JobCancelled, asyncio.CancelledError)):
            return "cancelled"
        if isinstance(exc, (Discard, WorkflowError)) or self.job.attempt >= self.job.max_attempts:
            return "dead"
        return "failed"


class Middleware:
    """Base class for middleware: every hook passes through. Override the ones
    you need (see ``app.add_middleware``)."""

    __module__ = "pgqueue"

    def on_enqueue(self, spec: JobSpec) -> JobSpec:
        return spec

    def around_enqueue(
        self, specs: list[JobSpec], call_next: Callable[[list[JobSpec]], list[Job]]
    ) -> list[Job]:
        return call_next(specs)

    async def around_enqueue_async(
        self, specs: list[JobSpec], call_next: Callable[[list[JobSpec]], Awaitable[list[Job]]]
    ) -> list[Job]:
        return await call_next(specs)

    def around_execute(self, attempt: Attempt, call_next: Callable[[], Any]) -> Any:
        return call_next()

    async def around_execute_async(
        self, attempt: Attempt, call_next: Callable[[], Awaitable[Any]]
    ) -> Any:
        return await call_next()


def _hook(middleware: Any, name: str) -> Callable[..., Any] | None:
    """The bound hook, or None when absent or the base class's pass-through."""
    fn = getattr(type(middleware), name, None)
    if fn is None or fn is getattr(Middleware, name):
        return None
    return getattr(middleware, name)  # type: ignore[no-any-return]


def _prepared(on_enqueue: Callable[[JobSpec], Any] | None, specs: list[JobSpec]) -> list[JobSpec]:
    if on_enqueue is None:
        return specs
    out = [on_enqueue(s) for s in specs]
    for s in out:
        if not isinstance(s, JobSpec):
            raise TypeError(f"on_enqueue must return a JobSpec, not {type(s).__name__}")
    return out


class Hooks:
    """The app's middleware, and the eager runner of ``pgqueue.testing.eager``.

    False when there is neither: the enqueue path checks that and nothing else.
    """

    def __init__(self) -> None:
        self.middleware: list[Any] = []
        self.inline: Insert | None = None  # eager mode: run jobs instead of inserting them
        self.inline_async: InsertAsync | None = None

    def __bool__(self) -> bool:
        return bool(self.middleware) or self.inline is not None

    def add(self, middleware: Any) -> None:
        if not any(_hook(middleware, name) for name in HOOKS):
            raise TypeError(f"{middleware!r} defines none of: {', '.join(HOOKS)}")
        self.middleware.append(middleware)

    def remove(self, middleware: Any) -> None:
        self.middleware.remove(middleware)

    # -- enqueue -------------------------------------------------------------------

    def enqueue(self, specs: list[JobSpec], connection: Any, insert: Insert) -> list[Job]:
        terminal = self.inline or insert
        layers = [(_hook(m, "on_enqueue"), _hook(m, "around_enqueue")) for m in self.middleware]

        def step(i: int, specs: list[JobSpec]) -> list[Job]:
            if i == len(layers):
                return terminal(specs, connection)
            on, around = layers[i]
            specs = _prepared(on, specs)
            if around is None:
                return step(i + 1, specs)
            return around(specs, functools.partial(step, i + 1))  # type: ignore[no-any-return]

        return step(0, specs) if specs else []

    async def enqueue_async(
        self, specs: list[JobSpec], connection: Any, insert: InsertAsync
    ) -> list[Job]:
        terminal = self.inline_async or insert
        layers = [
            (_hook(m, "on_enqueue"), _hook(m, "around_enqueue_async")) for m in self.middleware
        ]

        async def step(i: int, specs: list[JobSpec]) -> list[Job]:
            if i == len(layers):
                return await terminal(specs, connection)
            on, around = layers[i]
            specs = _prepared(on, specs)
            if around is None:
                return await step(i + 1, specs)
            return await around(specs, functools.partial(step, i + 1))  # type: ignore[no-any-return]

        return await step(0, specs) if specs else []

    # -- execution -----------------------------------------------------------------

    def wrap_execute(
        self,
        task: Task[Any, Any],
        current: Callable[[], RunningJob],
        fn: Callable[..., Any] | None = None,
    ) -> Callable[..., Any]:
        """``task.fn`` (or ``fn``, which runs it: a workflow's replay) wrapped in the
        execute middleware (itself when there is none).

        The wrapper runs inside the attempt's job context: ``current`` (the
        caller's ``current_job``; a port cannot import it) returns it.
        """
        fn = fn or task.fn
        assert fn is not None
        name = "around_execute_async" if task.is_async else "around_execute"
        layers = [h for h in (_hook(m, name) for m in self.middleware) if h is not None]
        if not layers:
            return fn
        transactional = task.config.transactional

        def attempt_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Attempt:
            shown = (
                {k: v for k, v in kwargs.items() if k != "connection"} if transactional else kwargs
            )
            return Attempt(current(), args, shown)

        if task.is_async:

            async def run_async(*args: Any, **kwargs: Any) -> Any:
                attempt = attempt_of(args, kwargs)

                async def step(i: int) -> Any:
                    if i == len(layers):
                        return await fn(*args, **kwargs)
                    return await layers[i](attempt, functools.partial(step, i + 1))

                return await step(0)

            return run_async

        def run(*args: Any, **kwargs: Any) -> Any:
            attempt = attempt_of(args, kwargs)

            def step(i: int) -> Any:
                if i == len(layers):
                    return fn(*args, **kwargs)
                return layers[i](attempt, functools.partial(step, i + 1))

            return step(0)

        return run
