"""The I/O-free core: JSON encoding, job specs and rows, backoff.

Nothing here touches the network; the sync and async fronts drive it.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

STATUSES = ("queued", "running", "succeeded", "failed", "dead", "cancelled")
FINISHED = frozenset({"succeeded", "dead", "cancelled"})

JOB_FIELDS = (
    "id", "queue", "task", "args", "kwargs", "priority", "status", "run_at", "attempts",
    "max_attempts", "leased_until", "worker_id", "unique_key", "created_at", "started_at",
    "finished_at", "last_error", "errors", "result", "progress", "cancel_requested", "meta",
)  # fmt: skip

PRIORITY_MIN, PRIORITY_MAX = -32768, 32767

# Where a unique key must be unique among unfinished jobs: the jobs of its task
# (the default), of its queue, or every job enqueued with the 'global' scope.
UNIQUE_SCOPES = ("task", "queue", "global")


def check_status(status: str) -> str:
    """``status`` if it is a job status, else ``ValueError`` listing them."""
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}; one of: {', '.join(STATUSES)}")
    return status


def check_unique_scope(scope: str) -> str:
    """``scope`` if it is a unique-key scope, else ``ValueError`` listing them."""
    if scope not in UNIQUE_SCOPES:
        raise ValueError(f"unknown unique_scope {scope!r}; one of: {', '.join(UNIQUE_SCOPES)}")
    return scope


def dumps(value: Any, what: str) -> str:
    """Encode ``value`` as JSON or raise ``TypeError`` naming ``what``."""
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} is not JSON-serialisable: {exc}") from None


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: ``uniform(0, min(cap, base * 2**n))``."""

    __module__ = "pgqueue"

    base: float = 1.0
    cap: float = 300.0

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < 0:
            raise ValueError("backoff base and cap must be >= 0")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before the retry that follows failed attempt ``attempt`` (1-based)."""
        ceiling = min(self.cap, self.base * math.pow(2, max(0, attempt - 1)))
        return (rng or random).uniform(0, ceiling)


@dataclass(slots=True)
class JobSpec:
    """An unsaved job: what ``task.job(...)`` builds and ``enqueue_many`` inserts."""

    __module__ = "pgqueue"

    task: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    queue: str = "default"
    priority: int = 0
    run_at: datetime | None = None
    delay: float = 0.0
    max_attempts: int = 3
    unique_key: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    unique_scope: str = "task"

    def __post_init__(self) -> None:
        if not isinstance(self.task, str) or not self.task:
            raise ValueError("task name must be a non-empty string")
        if not isinstance(self.queue, str) or not self.queue:
            raise ValueError("queue name must be a non-empty string")
        if not PRIORITY_MIN <= self.priority <= PRIORITY_MAX:
            raise ValueError(f"priority must be within [{PRIORITY_MIN}, {PRIORITY_MAX}]")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if self.delay < 0 or not math.isfinite(self.delay):
            raise ValueError("delay must be a finite number of seconds >= 0")
        if self.run_at is not None and self.run_at.tzinfo is None:
            raise ValueError("run_at must be timezone-aware")
        if self.unique_key is not None and not isinstance(self.unique_key, str):
            raise TypeError("unique_key must be a string")
        check_unique_scope(self.unique_scope)

    def with_arguments(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> JobSpec:
        """A copy with these arguments, skipping validation (this one was checked).

        Straight-line code: bulk producers call this once per job.
        """
        spec = _new(JobSpec)
        spec.task = self.task
        spec.args = args
        spec.kwargs = kwargs
        spec.queue = self.queue
        spec.priority = self.priority
        spec.run_at = self.run_at
        spec.delay = self.delay
        spec.max_attempts = self.max_attempts
        spec.unique_key = self.unique_key
        spec.meta = self.meta
        spec.unique_scope = self.unique_scope
        return spec


_new = object.__new__


def encode_json(spec: JobSpec) -> tuple[str, str, str]:
    """``args``, ``kwargs`` and ``meta`` as JSON; TypeError naming the task if not JSON.

    Most jobs have no kwargs or meta: the encoder is skipped for empty ones.
    """
    return (
        dumps(spec.args, f"argument of {spec.task}") if spec.args else "[]",
        dumps(spec.kwargs, f"keyword argument of {spec.task}") if spec.kwargs else "{}",
        dumps(spec.meta, f"meta of {spec.task}") if spec.meta else "{}",
    )


def enqueue_one_params(spec: JobSpec) -> dict[str, Any]:
    """Parameters of the ``enqueue_one`` query; raises TypeError on non-JSON values."""
    args, kwargs, meta = encode_json(spec)
    return {
        "queue": spec.queue,
        "task": spec.task,
        "args": args,
        "kwargs": kwargs,
        "priority": spec.priority,
        "run_at": spec.run_at,
        "delay": float(spec.delay),
        "max_attempts": spec.max_attempts,
        "unique_key": spec.unique_key,
        "meta": meta,
        "unique_scope": spec.unique_scope,
    }


def enqueue_params(specs: Sequence[JobSpec], *, force: bool = False) -> dict[str, Any]:
    """The ``enqueue`` query's one parameter: every row as one JSON array.

    One C-level ``json.dumps`` for the whole batch keeps bulk enqueue cheap;
    a non-JSON value raises ``TypeError`` naming its task.
    """
    rows = [
        [s.queue, s.task, s.args, s.kwargs, s.priority,
         None if s.run_at is None else s.run_at.isoformat(),
         s.delay, s.max_attempts, s.unique_key, s.meta, s.unique_scope]
        for s in specs
    ]  # fmt: skip
    try:
        encoded = json.dumps(rows, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        for s in specs:  # slow path: name the culprit
            dumps(list(s.args), f"argument of {s.task}")
            dumps(dict(s.kwargs), f"keyword argument of {s.task}")
            dumps(dict(s.meta), f"meta of {s.task}")
        raise
    # force: skip the max_depth check (the scheduler's fires).
    return {"rows": encoded, "force": force}


def unique_identity(spec: JobSpec) -> tuple[str, str, str, str] | None:
    """What a keyed job is matched by: (key, scope, task, queue); None without a key."""
    if spec.unique_key is None:
        return None
    return (spec.unique_key, spec.unique_scope, spec.task, spec.queue)


def holder_params(specs: Sequence[JobSpec]) -> dict[str, list[str]]:
    """The ``jobs_by_unique_key`` arrays for these keyed specs, in order."""
    keyed = [i for i in map(unique_identity, specs) if i is not None]
    return {
        "keys": [i[0] for i in keyed],
        "scopes": [i[1] for i in keyed],
        "tasks": [i[2] for i in keyed],
        "queues": [i[3] for i in keyed],
    }


def match_inserted(
    specs: Sequence[JobSpec], inserted: Sequence[tuple[Any, ...]]
) -> tuple[list[tuple[Any, ...] | None], list[JobSpec]]:
    """Pair each spec with its inserted row (``id, unique_key, status, run_at,
    created_at, woken, unique_scope, task, queue``, ordered by id).

    Rows come back in insertion order (ids increase), and only rows whose
    unique key was already held in its scope are skipped. Returns the
    per-spec row (None where the key was held) and the specs whose holder
    must be looked up.
    """
    by_key = {(row[1], row[6], row[7], row[8]): row for row in inserted if row[1] is not None}
    plain = iter([row for row in inserted if row[1] is None])
    out: list[tuple[Any, ...] | None] = []
    missing: list[JobSpec] = []
    for spec in specs:
        ident = unique_identity(spec)
        if ident is None:
            out.append(next(plain))
        elif ident in by_key:
            out.append(by_key.pop(ident))
        else:
            out.append(None)
            missing.append(spec)
    return out, missing


def format_error(exc: BaseException, attempt: int, tb: str, at: datetime) -> dict[str, Any]:
    """One entry of a job's per-attempt error history."""
    return {
        "attempt": attempt,
        "at": at.isoformat(),
        "error": f"{type(exc).__name__}: {exc}",
        "type": f"{type(exc).__module__}.{type(exc).__qualname__}",  # importable path
        "traceback": tb,
    }
