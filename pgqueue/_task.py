"""Tasks and per-enqueue options."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from pgqueue._core import JobSpec, RetryPolicy
from pgqueue._job import Job

if TYPE_CHECKING:
    from pgqueue._protocols import TaskOwner

P = ParamSpec("P")
R = TypeVar("R")

_UNSET: Any = object()


@dataclass(frozen=True)
class TaskConfig:
    """What a task declares; enqueue options override the job-level parts."""

    name: str
    queue: str = "default"
    priority: int = 0
    max_attempts: int = 3
    timeout: float | None = None
    lease: float | None = None
    retry: RetryPolicy | None = None
    transactional: bool = False
    unique_scope: str = "task"

    def __post_init__(self) -> None:
        # The job-level defaults must make a valid job, for declared tasks and
        # task_ref() alike: check them once, here.
        JobSpec(task=self.name, queue=self.queue, priority=self.priority,
                max_attempts=self.max_attempts)  # fmt: skip


class Task(Generic[P, R]):
    """A function registered with ``@app.task``; call it directly or enqueue it."""

    __module__ = "pgqueue"

    def __init__(self, app: TaskOwner, fn: Callable[P, R] | None, config: TaskConfig) -> None:
        self.app = app
        self.fn = fn
        self.config = config
        self.name = config.name
        if fn is not None:
            functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"<pgqueue.Task {self.name} queue={self.config.queue}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        if self.fn is None:
            raise TypeError(f"task {self.name!r} is a reference by name; it cannot run here")
        return self.fn(*args, **kwargs)

    @functools.cached_property
    def _signature(self) -> inspect.Signature | None:
        """The signature callers fill in: a transactional task's ``connection``
        parameter is supplied by the worker, not by the caller."""
        if self.fn is None:
            return None
        sig = inspect.signature(self.fn)
        if self.config.transactional and "connection" in sig.parameters:
            params = [p for name, p in sig.parameters.items() if name != "connection"]
            sig = sig.replace(parameters=params)
        return sig

    @functools.cached_property
    def is_async(self) -> bool:
        return self.fn is not None and inspect.iscoroutinefunction(self.fn)

    def options(
        self,
        *,
        connection: Any = None,
        delay: float = 0.0,
        run_at: datetime | None = None,
        priority: int = _UNSET,
        queue: str = _UNSET,
        unique_key: str | None = None,
        max_attempts: int = _UNSET,
        meta: Mapping[str, Any] | None = None,
        unique_scope: str = _UNSET,
        depends_on: Iterable[int | Job | JobSpec] = (),
        on_parent_failure: str = "cancel",
        pass_result: bool | str | None = None,
    ) -> TaskOptions[P, R]:
        """Options for the next enqueue: they override the task's declared ones.

        ``unique_scope``: where ``unique_key`` must be unique among unfinished
        jobs: ``"task"`` (the default), ``"queue"`` or ``"global"``.
        ``depends_on``: the job waits (``blocked``) until these jobs (ids, ``Job``
        values, or earlier specs of the same ``enqueue_many`` batch) have finished;
        ``on_parent_failure``: ``"cancel"`` (default) or ``"run"`` when one ends
        dead or cancelled; ``pass_result``: ``False``/``"none"`` (a chain step
        that does not want the previous result), ``"previous"`` or ``"list"``.
        """
        cfg = self.config
        return TaskOptions(
            self,
            connection,
            dict(
                delay=delay,
                run_at=run_at,
                priority=cfg.priority if priority is _UNSET else priority,
                queue=cfg.queue if queue is _UNSET else queue,
                unique_key=unique_key,
                max_attempts=cfg.max_attempts if max_attempts is _UNSET else max_attempts,
                meta=dict(meta or {}),
                unique_scope=cfg.unique_scope if unique_scope is _UNSET else unique_scope,
                depends_on=_parents(depends_on),
                on_parent_failure=on_parent_failure,
                pass_result=_pass_result(pass_result),
            ),
        )

    def _split_connection(self, kwargs: dict[str, Any]) -> Any:
        # `task.enqueue(42, connection=conn)` joins conn's transaction, unless
        # the task itself takes a parameter called `connection`.
        sig = self._signature
        if "connection" in kwargs and (sig is None or "connection" not in sig.parameters):
            return kwargs.pop("connection")
        return None

    @functools.cached_property
    def _default_options(self) -> TaskOptions[P, R]:
        return self.options()

    @functools.cached_property
    def _check_args(self) -> Callable[[tuple[Any, ...], dict[str, Any]], None]:
        return _arg_checker(self.name, self._signature)

    def job(self, *args: P.args, **kwargs: P.kwargs) -> JobSpec:
        """An unsaved job, for ``app.enqueue_many``."""
        return self._default_options.job(*args, **kwargs)

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        conn = self._split_connection(kwargs)
        spec = self._default_options.job(*args, **kwargs)
        return self.app.enqueue_one(spec, connection=conn)

    async def enqueue_async(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        conn = self._split_connection(kwargs)
        spec = self._default_options.job(*args, **kwargs)
        return await self.app.enqueue_one_async(spec, connection=conn)


class TaskOptions(Generic[P, R]):
    """``task.options(...)``: a task with per-enqueue options bound."""

    __module__ = "pgqueue"

    def __init__(self, task: Task[P, R], connection: Any, fields: dict[str, Any]) -> None:
        self.task = task
        self.connection = connection
        self._fields = fields
        # Validate now, so a bad option fails before any arguments are given.
        self._template = JobSpec(task=task.name, **fields)

    def job(self, *args: P.args, **kwargs: P.kwargs) -> JobSpec:
        needs_result = None
        try:
            self.task._check_args(args, kwargs)
        except TypeError as exc:
            # A step that gets its parent's result as first argument (a chain's
            # `parse.job()`) is complete with one more: enqueueing it outside such
            # a place raises this error then (before any I/O).
            if self._template.pass_result == "none":
                raise
            try:
                self.task._check_args((None, *args), kwargs)
            except TypeError:
                raise exc from None
            needs_result = str(exc)
        # The template was validated once; the copy skips re-validation.
        spec = self._template.with_arguments(args, kwargs)
        spec.needs_result = needs_result
        return spec

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        spec = self.job(*args, **kwargs)
        return self.task.app.enqueue_one(spec, connection=self.connection)

    async def enqueue_async(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        spec = self.job(*args, **kwargs)
        return await self.task.app.enqueue_one_async(spec, connection=self.connection)


def _pass_result(value: bool | str | None) -> str | None:
    """False: receive nothing ('none'); True or None: as the flow decides."""
    if value is False:
        return "none"
    return None if value is True else value


def _parents(parents: Iterable[int | Job | JobSpec]) -> tuple[int | JobSpec, ...]:
    if isinstance(parents, int | Job | JobSpec):
        parents = [parents]
    return tuple(p.id if isinstance(p, Job) else p for p in parents)


def _arg_checker(
    name: str, sig: inspect.Signature | None
) -> Callable[[tuple[Any, ...], dict[str, Any]], None]:
    """A check that arguments fit the task's signature, so a bad call fails at enqueue.

    Plain signatures (positional-or-keyword only) get a fast check; others
    fall back to ``Signature.bind``.
    """
    if sig is None:
        return lambda args, kwargs: None

    def bind(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            sig.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{name}: {exc}") from None

    params = list(sig.parameters.values())
    if any(p.kind is not p.POSITIONAL_OR_KEYWORD for p in params):
        return bind
    names = [p.name for p in params]
    known = frozenset(names)
    required = [p.name for p in params if p.default is p.empty]

    def fast(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        n = len(args)
        if n > len(names) or not known.issuperset(kwargs):
            bind(args, kwargs)
        for req in required[n:]:
            if req not in kwargs:
                bind(args, kwargs)
        if kwargs and n and not known.isdisjoint(names[:n]) and any(k in kwargs for k in names[:n]):
            bind(args, kwargs)

    return fast
