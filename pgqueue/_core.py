"""The I/O-free core: JSON encoding, job specs and rows, backoff.

Nothing here touches the network; the sync and async fronts drive it.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

STATUSES = ("queued", "blocked", "running", "succeeded", "failed", "dead", "cancelled")
FINISHED = frozenset({"succeeded", "dead", "cancelled"})

JOB_FIELDS = (
    "id", "queue", "task", "args", "kwargs", "priority", "status", "run_at", "attempts",
    "max_attempts", "leased_until", "worker_id", "unique_key", "created_at", "started_at",
    "finished_at", "last_error", "errors", "result", "progress", "cancel_requested", "meta",
    "flow_id", "parent_ids",
)  # fmt: skip

PRIORITY_MIN, PRIORITY_MAX = -32768, 32767  # smallint
MAX_ATTEMPTS = 2**31 - 1  # integer
MAX_DELAY = 100 * 365.25 * 86_400.0  # seconds: a century
# UTF-8 bytes. B-tree index rows are capped at 2,704 bytes: the queue is part of
# the claim index key, the unique key of the unique index.
MAX_QUEUE_BYTES = 255
MAX_TASK_BYTES = 1024
MAX_UNIQUE_KEY_BYTES = 1024
DEFAULT_MAX_PAYLOAD = 1024 * 1024  # bytes of args + kwargs + meta as JSON, per job

_SEPARATORS = (",", ":")
# A NUL character as JSON writes it (an escaped backslash before "u0000" is text).
_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")

# Where a unique key must be unique among unfinished jobs: the jobs of its task
# (the default), of its queue, or every job enqueued with the 'global' scope.
UNIQUE_SCOPES = ("task", "queue", "global")

# What a dependent job does when a parent ends dead or cancelled, and how it
# receives its parents' results (README, "Workflows").
ON_PARENT_FAILURE = ("cancel", "run")
PASS_RESULT = ("none", "previous", "list")


class SpecRef(NamedTuple):
    """A parent that is an earlier job of the same batch, by its position in it.
    (A tuple: a chord's callback has one per job of its header.)"""

    pos: int


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
    """Encode ``value`` as JSON or raise ``TypeError`` naming ``what``.

    Stricter than ``json.dumps``: no NaN, no NUL character (PostgreSQL's text
    and jsonb refuse it), and no two keys of one object that JSON would turn
    into the same string (``{1: "a", "1": "b"}``: one would be lost).
    """
    try:
        # Sorting keys fails only on an object mixing string and non-string keys,
        # the one way two keys can collide; it costs nothing measurable.
        text = json.dumps(value, separators=_SEPARATORS, allow_nan=False, sort_keys=True)
    except TypeError:
        text = _dumps_mixed_keys(value, what)
    except (ValueError, RecursionError) as exc:
        raise TypeError(f"{what} is not JSON-serialisable: {_reason(exc)}") from None
    if "\\u0000" in text and _NUL.search(text):
        raise TypeError(f"{what} contains a NUL character (PostgreSQL cannot store it)")
    return text


def _dumps_mixed_keys(value: Any, what: str) -> str:
    try:
        text = json.dumps(value, separators=_SEPARATORS, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise TypeError(f"{what} is not JSON-serialisable: {_reason(exc)}") from None
    key = _colliding_key(value)
    if key is not None:
        raise TypeError(f"{what} has two keys that are both {key!r} in JSON")
    return text


def _reason(exc: BaseException) -> str:
    return "nested too deeply" if isinstance(exc, RecursionError) else str(exc)


def _json_key(key: Any) -> str:
    """The string ``json.dumps`` makes of an object key."""
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool):
        return json.dumps(key)
    return float.__repr__(key) if isinstance(key, float) else int.__repr__(key)


def _colliding_key(value: Any) -> str | None:
    """A JSON key two keys of one object share, anywhere in ``value``; else None."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            keys = [_json_key(k) for k in item]
            if len(set(keys)) != len(keys):
                return next(k for k in keys if keys.count(k) > 1)
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_name(value: Any, what: str, limit: int, *, empty: bool = False) -> None:
    if not isinstance(value, str) or not (value or empty):
        raise ValueError(f"{what} must be a non-empty string")
    if "\x00" in value:
        raise ValueError(f"{what} contains a NUL character")
    if len(value) * 4 > limit and len(value.encode("utf-8", "surrogatepass")) > limit:
        raise ValueError(f"{what} is longer than {limit} bytes (UTF-8)")


def check_queue_name(name: Any) -> str:
    """``name`` if it can name a queue, else ``ValueError`` (empty, NUL, too long)."""
    _check_name(name, "queue name", MAX_QUEUE_BYTES)
    return str(name)


def check_payload(encoded: tuple[str, str, str], task: str, limit: int) -> None:
    """``ValueError`` when a job's JSON (args, kwargs, meta) is over ``limit`` bytes."""
    size = len(encoded[0]) + len(encoded[1]) + len(encoded[2])  # ASCII: chars are bytes
    if size > limit:
        raise ValueError(
            f"job of {task}: arguments and meta are {size} bytes as JSON,"
            f" over the limit of {limit} (App(max_payload=...))"
        )


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
    # Parents: ids of existing jobs, or earlier specs of the same batch (a JobSpec,
    # or the SpecRef it becomes once the batch is linked).
    depends_on: tuple[Any, ...] = ()
    on_parent_failure: str = "cancel"
    # None: as the canvas decides (a chain step gets the previous result), 'none'
    # for a plain depends_on; else one of PASS_RESULT.
    pass_result: str | None = None
    # The task's signature wants one more leading argument than given (a step
    # that receives its parent's result): the TypeError to raise if it does not.
    needs_result: str | None = None

    def __post_init__(self) -> None:
        _check_name(self.task, "task name", MAX_TASK_BYTES)
        check_queue_name(self.queue)
        if not _is_int(self.priority):
            raise TypeError(f"priority must be an integer, not {type(self.priority).__name__}")
        if not PRIORITY_MIN <= self.priority <= PRIORITY_MAX:
            raise ValueError(f"priority must be within [{PRIORITY_MIN}, {PRIORITY_MAX}]")
        if not _is_int(self.max_attempts):
            kind = type(self.max_attempts).__name__
            raise TypeError(f"max_attempts must be an integer, not {kind}")
        if not 1 <= self.max_attempts <= MAX_ATTEMPTS:
            raise ValueError(f"max_attempts must be within [1, {MAX_ATTEMPTS}]")
        if isinstance(self.delay, bool) or not isinstance(self.delay, int | float):
            raise TypeError(f"delay must be a number of seconds, not {type(self.delay).__name__}")
        if not 0 <= self.delay <= MAX_DELAY:
            raise ValueError(f"delay must be a finite number of seconds in [0, {MAX_DELAY:.0f}]")
        if self.run_at is not None:
            if not isinstance(self.run_at, datetime):
                kind = type(self.run_at).__name__
                raise TypeError(f"run_at must be a timezone-aware datetime, not {kind}")
            if self.run_at.tzinfo is None:
                raise ValueError("run_at must be timezone-aware")
        if self.unique_key is not None:
            if not isinstance(self.unique_key, str):
                raise TypeError("unique_key must be a string")
            _check_name(self.unique_key, "unique_key", MAX_UNIQUE_KEY_BYTES, empty=True)
        if not isinstance(self.args, tuple | list):
            raise TypeError(f"args must be a tuple or list, not {type(self.args).__name__}")
        for what, value in (("kwargs", self.kwargs), ("meta", self.meta)):
            if not isinstance(value, Mapping):
                raise TypeError(f"{what} must be a mapping, not {type(value).__name__}")
        if not all(isinstance(k, str) for k in self.kwargs):
            raise TypeError("keyword argument names must be strings")
        check_unique_scope(self.unique_scope)
        if self.depends_on or self.on_parent_failure != "cancel" or self.pass_result is not None:
            check_dependencies(self)

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
        spec.depends_on = self.depends_on
        spec.on_parent_failure = self.on_parent_failure
        spec.pass_result = self.pass_result
        spec.needs_result = self.needs_result
        return spec

    def linked(self, depends_on: tuple[Any, ...], pass_result: str | None) -> JobSpec:
        """A copy with these parents and result passing, skipping validation
        (the parents were checked when the batch was linked)."""
        spec = self.with_arguments(self.args, self.kwargs)
        spec.depends_on = depends_on
        spec.pass_result = pass_result
        return spec


_new = object.__new__


def check_dependencies(spec: JobSpec) -> None:
    """``ValueError``/``TypeError`` for a bad ``depends_on``, ``on_parent_failure`` or
    ``pass_result``, before any I/O."""
    if not isinstance(spec.depends_on, tuple):
        raise TypeError("depends_on must be a tuple of job ids, Jobs or job specs")
    for parent in spec.depends_on:
        if isinstance(parent, JobSpec | SpecRef):
            continue
        if not _is_int(parent):
            kind = type(parent).__name__
            raise TypeError(f"depends_on takes job ids, Jobs or job specs, not {kind}")
        if parent <= 0:
            raise ValueError("job ids are positive integers")
    if spec.on_parent_failure not in ON_PARENT_FAILURE:
        raise ValueError(
            f"unknown on_parent_failure {spec.on_parent_failure!r}; one of: cancel, run"
        )
    if spec.pass_result is not None and spec.pass_result not in PASS_RESULT:
        raise ValueError(
            f"unknown pass_result {spec.pass_result!r}; one of: {', '.join(PASS_RESULT)}"
        )
    if spec.unique_key is not None and spec.depends_on:
        raise ValueError("a job with depends_on cannot have a unique_key (not supported yet)")


def encode_json(spec: JobSpec, max_payload: int = DEFAULT_MAX_PAYLOAD) -> tuple[str, str, str]:
    """``args``, ``kwargs`` and ``meta`` as JSON; TypeError naming the task if not JSON,
    ValueError over ``max_payload`` bytes.

    Most jobs have no kwargs or meta: the encoder is skipped for empty ones.
    """
    encoded = (
        dumps(spec.args, f"argument of {spec.task}") if spec.args else "[]",
        dumps(spec.kwargs, f"keyword argument of {spec.task}") if spec.kwargs else "{}",
        dumps(spec.meta, f"meta of {spec.task}") if spec.meta else "{}",
    )
    check_payload(encoded, spec.task, max_payload)
    return encoded


def enqueue_one_params(spec: JobSpec, max_payload: int = DEFAULT_MAX_PAYLOAD) -> dict[str, Any]:
    """Parameters of the ``enqueue_one`` query; raises before any I/O on a bad value."""
    args, kwargs, meta = encode_json(spec, max_payload)
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


def enqueue_params(
    specs: Sequence[JobSpec], *, force: bool = False, max_payload: int = DEFAULT_MAX_PAYLOAD
) -> dict[str, Any]:
    """The ``enqueue`` query's one parameter: every row as one JSON array.

    One C-level ``json.dumps`` for the whole batch keeps bulk enqueue cheap;
    only a batch that fails it, holds a NUL or is over ``max_payload`` in all
    is encoded job by job, to check each and name the culprit.
    """
    rows = [
        [s.queue, s.task, s.args, s.kwargs, s.priority,
         None if s.run_at is None else s.run_at.isoformat(),
         s.delay, s.max_attempts, s.unique_key, s.meta, s.unique_scope]
        for s in specs
    ]  # fmt: skip
    try:
        encoded = json.dumps(rows, separators=_SEPARATORS, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError, RecursionError):
        encoded = ""
    if not encoded or len(encoded) > max_payload or "\\u0000" in encoded:
        for s in specs:  # slow path: check each job, name the culprit
            encode_json(s, max_payload)
        # Every job passed: some object mixes key types without a collision.
        encoded = encoded or json.dumps(rows, separators=_SEPARATORS, allow_nan=False)
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


def error_text(exc: BaseException) -> str:
    """``Type: message``; never raises, even for an exception whose ``str()`` does."""
    name = type(exc).__name__
    try:
        return f"{name}: {exc}"
    except Exception as failure:
        try:
            text = repr(exc)
        except Exception:
            text = "repr() failed too"
        return f"{name}: <str() raised {type(failure).__name__}; {text}>"


def format_error(exc: BaseException, attempt: int, tb: str, at: datetime) -> dict[str, Any]:
    """One entry of a job's per-attempt error history."""
    return {
        "attempt": attempt,
        "at": at.isoformat(),
        "error": error_text(exc),
        "type": f"{type(exc).__module__}.{type(exc).__qualname__}",  # importable path
        "traceback": tb,
    }
