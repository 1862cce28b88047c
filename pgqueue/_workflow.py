"""Durable workflows, the declarations: ``@app.workflow``, ``@app.step``, handles,
and the functions a workflow calls (``pgqueue.sleep``, ``wait_for_event``, ``now``,
``random``, ``run_task``).

No I/O here. A running workflow has a *run* (``_replay.WorkflowRun``, set by
the worker in ``current_run``) that checkpoints each call; a step called
outside a workflow is a plain function call. The design, the guarantees and
the determinism rules are in ``pgqueue/_replay.py`` and the README's "Durable
workflows".
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import random as _random
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Protocol, TypeVar

from pgqueue._core import JobSpec, RetryPolicy, dumps
from pgqueue._task import Task

if TYPE_CHECKING:
    from pgqueue._job import Job

P = ParamSpec("P")
R = TypeVar("R")

FOREVER = 100 * 365 * 86400.0  # seconds: wait_for_event without a timeout


class Run(Protocol):
    """What the workflow functions need of the running workflow (``_replay``)."""

    is_async: bool

    def step(self, step: Step[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any: ...

    async def step_async(
        self, step: Step[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any: ...

    def wait(self, kind: str, name: str, event: str | None, seconds: float) -> Any: ...

    async def wait_async(self, kind: str, name: str, event: str | None, seconds: float) -> Any: ...

    def checkpoint(self, name: str, kind: str, make: Callable[[], Any]) -> Any: ...

    async def checkpoint_async(self, name: str, kind: str, make: Callable[[], Any]) -> Any: ...

    def child(self, spec: JobSpec) -> Any: ...

    async def child_async(self, spec: JobSpec) -> Any: ...


current_run: ContextVar[Run | None] = ContextVar("pgqueue_workflow_run", default=None)


def _run(what: str, asynchronous: bool) -> Run:
    run = current_run.get()
    if run is None:
        raise RuntimeError(f"pgqueue.{what}() is only available inside a workflow")
    if run.is_async != asynchronous:
        base = what.removesuffix("_async")
        twin = f"await pgqueue.{base}_async()" if run.is_async else f"pgqueue.{base}()"
        kind = "an async" if run.is_async else "a sync"
        raise TypeError(f"pgqueue.{what}() called in {kind} workflow: use {twin}")
    return run


def args_digest(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """A short digest of a step's arguments, kept in its log row (for people reading it)."""
    try:
        text = dumps([list(args), kwargs], "step arguments")
    except TypeError:
        text = repr((args, kwargs))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# -- what a workflow calls ------------------------------------------------------------


def sleep(seconds: float) -> None:
    """Sleep durably: the workflow's attempt ends and the worker is free; the job is
    due again in ``seconds``, when it replays to here and goes on."""
    _check_seconds(seconds)
    _run("sleep", False).wait("sleep", "pgqueue.sleep", None, float(seconds))


async def sleep_async(seconds: float) -> None:
    _check_seconds(seconds)
    await _run("sleep_async", True).wait_async("sleep", "pgqueue.sleep", None, float(seconds))


def wait_for_event(name: str, timeout: float | None = None) -> Any:
    """The payload of the next event ``name`` sent to this workflow (``send_event``),
    or None once ``timeout`` seconds have passed. Waiting frees the worker."""
    seconds = _check_wait(name, timeout)
    return _run("wait_for_event", False).wait("event", _event_step(name), name, seconds)


async def wait_for_event_async(name: str, timeout: float | None = None) -> Any:
    seconds = _check_wait(name, timeout)
    run = _run("wait_for_event_async", True)
    return await run.wait_async("event", _event_step(name), name, seconds)


def now() -> datetime:
    """The current time (UTC), checkpointed: a replay sees the value of the first run."""
    run = current_run.get()
    if run is None:
        return datetime.now(timezone.utc)
    return datetime.fromisoformat(_run("now", False).checkpoint("pgqueue.now", "now", _iso_now))


async def now_async() -> datetime:
    run = current_run.get()
    if run is None:
        return datetime.now(timezone.utc)
    value = await _run("now_async", True).checkpoint_async("pgqueue.now", "now", _iso_now)
    return datetime.fromisoformat(value)


def random() -> float:
    """A random float in [0, 1), checkpointed like ``now()``."""
    run = current_run.get()
    if run is None:
        return _random.random()
    return float(_run("random", False).checkpoint("pgqueue.random", "random", _random.random))


async def random_async() -> float:
    run = current_run.get()
    if run is None:
        return _random.random()
    value = await _run("random_async", True).checkpoint_async(
        "pgqueue.random", "random", _random.random
    )
    return float(value)


def run_task(job: JobSpec) -> Any:
    """Enqueue ``job`` (``task.job(...)``, or a child workflow's) and wait for it: the
    workflow is blocked on it meanwhile. Returns its result; raises ``StepFailed``
    when it ends dead or cancelled."""
    return _run("run_task", False).child(_check_spec(job))


async def run_task_async(job: JobSpec) -> Any:
    return await _run("run_task_async", True).child_async(_check_spec(job))


def _iso_now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _check_seconds(seconds: float) -> None:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
        raise ValueError(f"sleep: seconds must be a number >= 0, not {seconds!r}")


def _check_wait(name: str, timeout: float | None) -> float:
    if not isinstance(name, str) or not name:
        raise ValueError("wait_for_event: the event name must be a non-empty string")
    if timeout is None:
        return FOREVER
    _check_seconds(timeout)
    return float(timeout)


def _event_step(name: str) -> str:
    return f"pgqueue.wait_for_event:{name}"


def _check_spec(job: Any) -> JobSpec:
    if not isinstance(job, JobSpec):
        raise TypeError(f"run_task takes task.job(...), not {type(job).__name__}")
    return job


# -- declarations ---------------------------------------------------------------------


@dataclass(frozen=True)
class StepConfig:
    """What ``@app.step`` declares."""

    name: str
    max_attempts: int = 1
    timeout: float | None = None
    transactional: bool = False
    retry: RetryPolicy | None = None

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise TypeError(f"step {self.name}: max_attempts must be an int")
        if self.max_attempts < 1:
            raise ValueError(f"step {self.name}: max_attempts must be >= 1")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError(f"step {self.name}: timeout must be > 0")


class Step(Generic[P, R]):
    """A function declared with ``@app.step``: inside a workflow its result is
    checkpointed (a replay returns it without running the function again);
    elsewhere it is a plain call."""

    __module__ = "pgqueue"

    def __init__(self, fn: Callable[P, R], config: StepConfig, retry: RetryPolicy) -> None:
        self.fn = fn
        self.config = config
        self.name = config.name
        self.retry = config.retry or retry
        self.is_async = inspect.iscoroutinefunction(fn)
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"<pgqueue.Step {self.name}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        run = current_run.get()
        if run is None:
            return self.fn(*args, **kwargs)
        if run.is_async:  # an async workflow awaits its steps (sync ones run in a thread)
            return run.step_async(self, args, kwargs)  # type: ignore[return-value]
        if self.is_async:
            raise TypeError(f"async step {self.name} called from a sync workflow")
        return run.step(self, args, kwargs)  # type: ignore[no-any-return]


class Workflow(Task[P, R]):
    """A function declared with ``@app.workflow``: a task whose job replays its step log.

    ``start(...)`` enqueues it (``connection=`` joins the caller's transaction)
    and returns a ``WorkflowHandle``.
    """

    __module__ = "pgqueue"

    def __repr__(self) -> str:
        return f"<pgqueue.Workflow {self.name} queue={self.config.queue}>"

    def start(self, *args: P.args, **kwargs: P.kwargs) -> WorkflowHandle:
        job = self.enqueue(*args, **kwargs)
        return WorkflowHandle(job.id, self.app, job)

    async def start_async(self, *args: P.args, **kwargs: P.kwargs) -> WorkflowHandle:
        job = await self.enqueue_async(*args, **kwargs)
        return WorkflowHandle(job.id, self.app, job)


# -- handles --------------------------------------------------------------------------


@dataclass(frozen=True)
class StepRecord:
    """One row of a workflow's step log (``pgqueue.workflow_steps``)."""

    __module__ = "pgqueue"

    seq: int
    name: str
    kind: str  # workflow (seq 0), step, sleep, event, now, random, child
    args_digest: str | None
    result: Any
    error: str | None
    attempts: int
    wake_at: datetime | None
    event: str | None
    child_id: int | None
    started_at: datetime
    finished_at: datetime | None

    @property
    def finished(self) -> bool:
        return self.finished_at is not None


class WorkflowOwner(Protocol):
    """What a ``WorkflowHandle`` needs of its app."""

    def get_job(self, job_id: int) -> Job: ...

    async def get_job_async(self, job_id: int) -> Job: ...

    def wait_for(self, job_id: int, *, timeout: float | None = None) -> Any: ...

    async def wait_for_async(self, job_id: int, *, timeout: float | None = None) -> Any: ...

    def workflow_steps(self, workflow_id: int) -> list[StepRecord]: ...

    async def workflow_steps_async(self, workflow_id: int) -> list[StepRecord]: ...

    def cancel_workflow(self, workflow_id: int) -> None: ...

    async def cancel_workflow_async(self, workflow_id: int) -> None: ...

    def send_event(self, workflow_id: int, name: str, payload: Any = None, *,
                   connection: Any = None) -> None: ...  # fmt: skip

    async def send_event_async(self, workflow_id: int, name: str, payload: Any = None, *,
                               connection: Any = None) -> None: ...  # fmt: skip


class WorkflowHandle:
    """A started workflow, by its job id: wait for it, read its status and step log,
    send it events, cancel it."""

    __module__ = "pgqueue"

    def __init__(self, workflow_id: int, owner: Any, job: Job | None = None) -> None:
        self.id = workflow_id
        self._owner: WorkflowOwner = owner
        self.job = job  # as enqueued or last read

    def __repr__(self) -> str:
        return f"<pgqueue.WorkflowHandle id={self.id}>"

    def wait(self, timeout: float | None = None) -> Any:
        """The workflow's result; ``JobFailed`` if it ended dead or cancelled,
        ``WaitTimeout`` if it has not finished within ``timeout`` seconds."""
        return self._owner.wait_for(self.id, timeout=timeout)

    async def wait_async(self, timeout: float | None = None) -> Any:
        return await self._owner.wait_for_async(self.id, timeout=timeout)

    def status(self) -> str:
        self.job = self._owner.get_job(self.id)
        return self.job.status

    async def status_async(self) -> str:
        self.job = await self._owner.get_job_async(self.id)
        return self.job.status

    def steps(self) -> list[StepRecord]:
        """The step log, in order (seq 0, the workflow itself, once it has run)."""
        return self._owner.workflow_steps(self.id)

    async def steps_async(self) -> list[StepRecord]:
        return await self._owner.workflow_steps_async(self.id)

    def cancel(self) -> None:
        """Cancel the workflow (and the children it waits for): a waiting one never
        runs again; a running one runs no further step."""
        self._owner.cancel_workflow(self.id)

    async def cancel_async(self) -> None:
        await self._owner.cancel_workflow_async(self.id)

    def send_event(self, name: str, payload: Any = None, *, connection: Any = None) -> None:
        self._owner.send_event(self.id, name, payload, connection=connection)

    async def send_event_async(
        self, name: str, payload: Any = None, *, connection: Any = None
    ) -> None:
        await self._owner.send_event_async(self.id, name, payload, connection=connection)


for _fn in (sleep, sleep_async, wait_for_event, wait_for_event_async, now, now_async, random,
            random_async, run_task, run_task_async):  # fmt: skip
    _fn.__module__ = "pgqueue"
