"""The task registry: tasks, task references, cron declarations and defaults.

What a process knows about its tasks, with no I/O: the worker looks tasks up
here by name, the scheduler upserts the schedules declared here. Tasks refer
to their owner (the ``App``) through the small ``TaskOwner`` protocol, so the
registry never needs the facade itself.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from pgqueue._core import DEFAULT_MAX_PAYLOAD, JobSpec, RetryPolicy
from pgqueue._errors import ConfigurationError, ScheduleError
from pgqueue._hooks import Hooks
from pgqueue._protocols import TaskOwner
from pgqueue._schedule import Schedule, check_options
from pgqueue._task import Task, TaskConfig
from pgqueue._workflow import Step, StepConfig, Workflow

DEFAULT_LEASE = 30.0  # seconds a claim holds a job before the rescuer may take it back


class Registry:
    """Tasks by name, schedules by name, and the defaults tasks fall back on."""

    def __init__(
        self,
        owner: TaskOwner,
        *,
        retry: RetryPolicy | None = None,
        lease: float = DEFAULT_LEASE,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
    ) -> None:
        if lease <= 0:
            raise ConfigurationError("lease must be > 0 seconds")
        if max_payload < 1:
            raise ConfigurationError("max_payload must be >= 1 byte")
        self.owner = owner
        self.retry = retry or RetryPolicy()
        self.lease = lease
        self.max_payload = max_payload  # bytes of a job's args + kwargs + meta as JSON
        self.tasks: dict[str, Task[Any, Any]] = {}
        self.schedules: dict[str, Schedule] = {}
        self.hooks = Hooks()  # middleware (app.add_middleware), eager mode

    # -- tasks -------------------------------------------------------------------

    def register(
        self, func: Callable[..., Any], options: dict[str, Any], kind: type[Task[Any, Any]] = Task
    ) -> Task[Any, Any]:
        """Register ``func`` (sync or async) as a task with ``@app.task`` options
        (``kind=Workflow``: as a workflow, ``@app.workflow``)."""
        if isinstance(func, Task) and func.fn is not None:  # stacked above @app.cron
            if self.tasks.get(func.name) is func:
                del self.tasks[func.name]
            func = func.fn
        options = dict(options)
        name = options.pop("name", None) or f"{func.__module__}.{func.__qualname__}"
        config = TaskConfig(name=name, **options)
        # A throwaway spec validates the job-level options.
        JobSpec(task=name, queue=config.queue, priority=config.priority,
                max_attempts=config.max_attempts, unique_scope=config.unique_scope)  # fmt: skip
        if config.timeout is not None and config.timeout <= 0:
            raise ConfigurationError(f"task {name}: timeout must be > 0")
        if name in self.tasks and self.tasks[name].fn is not func:
            raise ConfigurationError(f"task name {name!r} is registered twice")
        if kind is Workflow and config.transactional:
            raise ConfigurationError(f"workflow {name}: declare its steps transactional instead")
        task: Task[Any, Any] = kind(self.owner, func, config)
        self.tasks[name] = task
        return task

    def step(self, func: Callable[..., Any], options: dict[str, Any]) -> Step[Any, Any]:
        """``@app.step``: a function whose result a workflow checkpoints."""
        options = dict(options)
        name = options.pop("name", None) or f"{func.__module__}.{func.__qualname__}"
        config = StepConfig(name=name, **options)
        if config.transactional and "connection" not in inspect.signature(func).parameters:
            raise ConfigurationError(f"transactional step {name} must take a `connection`")
        return Step(func, config, self.retry)

    def workflows(self) -> list[str]:
        """The names of the registered workflows."""
        return sorted(n for n, t in self.tasks.items() if isinstance(t, Workflow))

    def ref(self, name: str, *, queue: str = "default", priority: int = 0,
            max_attempts: int = 3) -> Task[Any, Any]:  # fmt: skip
        """A task known only by name, for producers that don't import the task code."""
        if name in self.tasks:
            return self.tasks[name]
        config = TaskConfig(name=name, queue=queue, priority=priority, max_attempts=max_attempts)
        return Task(self.owner, None, config)

    def get(self, name: str) -> Task[Any, Any] | None:
        return self.tasks.get(name)

    def task_of(self, fn: Any) -> Task[Any, Any] | None:
        """The task registered for the function ``fn``, if any."""
        return next((t for t in self.tasks.values() if t.fn is fn), None)

    def __iter__(self) -> Iterator[Task[Any, Any]]:
        return iter(self.tasks.values())

    def queues(self) -> list[str]:
        """The queues the registered tasks declare, sorted."""
        return sorted({t.config.queue for t in self.tasks.values()})

    def leases(self) -> list[float]:
        """The default lease and every task's own."""
        return [self.lease, *(t.config.lease for t in self.tasks.values() if t.config.lease)]

    def retry_for(self, task: Task[Any, Any]) -> RetryPolicy:
        return task.config.retry or self.retry

    # -- schedules -----------------------------------------------------------------

    def declare(
        self, target: Task[Any, Any] | str, cron: str, options: dict[str, Any]
    ) -> Schedule:
        """Declare a schedule in code (upserted by ``sync_schedules``)."""
        check_options(options)
        options = dict(options)
        name = options.pop("name", None)
        if isinstance(target, Task):
            task_name, fn = target.name, target.fn
        elif isinstance(target, str):
            task_name, fn = target, None
        else:
            raise TypeError(f"schedule a Task or a task name, not {type(target).__name__}")
        schedule = Schedule(name=name or task_name, cron=cron, task=task_name, fn=fn, **options)
        known = self.schedules.get(schedule.name)
        if known is not None and known != schedule:
            raise ScheduleError(
                f"schedule {schedule.name!r} is declared twice; give each one its own name="
            )
        self.schedules[schedule.name] = schedule
        return schedule

    def resolve(self, schedule: Schedule) -> Schedule:
        """The schedule with its task's name and job options filled in."""
        task = self.tasks.get(schedule.task)
        if schedule.fn is not None and (task is None or task.fn is not schedule.fn):
            # @app.task stacked above @app.cron registered the function anew (maybe renamed).
            task = next((t for t in reversed(self.tasks.values()) if t.fn is schedule.fn), task)
        cfg = task.config if task is not None else None
        return replace(
            schedule,
            task=cfg.name if cfg is not None else schedule.task,
            queue=schedule.queue or (cfg.queue if cfg else "default"),
            priority=schedule.priority if schedule.priority is not None else (
                cfg.priority if cfg else 0),
            max_attempts=schedule.max_attempts or (cfg.max_attempts if cfg else 3),
        )  # fmt: skip

    def declared(self) -> Sequence[Schedule]:
        """Every declared schedule, resolved, sorted by name."""
        return sorted((self.resolve(s) for s in self.schedules.values()), key=lambda s: s.name)
