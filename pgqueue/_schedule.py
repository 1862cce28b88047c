"""``Schedule``: a named cron schedule as a value object, and what is computed
from one without I/O (its shard, its fires' jobs, its table parameters).

The operations on the ``pgqueue.schedules`` table are in ``_schedules``; the
schedules declared in code are kept by the ``Registry``.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any

from pgqueue._core import JobSpec, dumps
from pgqueue._cron import Cron, check_policy, parse_cron
from pgqueue._errors import ScheduleError

SHARDS = 16  # changing it needs every row's shard recomputed (a migration)

# Columns of the ``schedule_columns`` fragment, in order.
FIELDS = ("name", "cron", "task", "timezone", "args", "kwargs", "queue", "priority",
          "max_attempts", "missed", "max_catchup", "grace_seconds", "enabled", "declared",
          "next_run_at", "last_run_at")  # fmt: skip


def shard_of(name: str) -> int:
    """The schedule's shard: a stable hash of its name (CRC-32), modulo ``SHARDS``."""
    return zlib.crc32(name.encode("utf-8")) % SHARDS


@dataclass(frozen=True)
class Schedule:
    """A named cron schedule: which task to enqueue, when, and what to do with missed fires.

    ``queue``, ``priority`` and ``max_attempts`` left as ``None`` come from
    the task when it is registered in this process, else the defaults. The
    state fields (``enabled`` onwards) are filled in when read from the table.
    """

    __module__ = "pgqueue"

    name: str
    cron: str
    task: str
    timezone: str = "UTC"
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    queue: str | None = None
    priority: int | None = None
    max_attempts: int | None = None
    missed: str = "latest"
    max_catchup: int = 10
    grace_seconds: float = 60.0
    enabled: bool = True
    declared: bool = False
    next_run_at: datetime | None = None
    last_run_at: datetime | None = None
    # The function declared with @app.cron: follows it if @app.task re-registers it.
    fn: Callable[..., Any] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ScheduleError("a schedule needs a non-empty name")
        if not isinstance(self.task, str) or not self.task:
            raise ScheduleError(f"schedule {self.name!r}: task must be a non-empty name")
        parse_cron(self.cron, self.timezone, name=self.name)
        check_policy(self.name, self.missed, self.max_catchup, self.grace_seconds)
        object.__setattr__(self, "args", tuple(self.args))
        object.__setattr__(self, "kwargs", dict(self.kwargs))
        try:
            dumps(list(self.args), "args")
            dumps(self.kwargs, "kwargs")
            JobSpec(task=self.task, queue=self.queue or "default", priority=self.priority or 0,
                    max_attempts=self.max_attempts or 3)  # fmt: skip
        except (TypeError, ValueError) as exc:
            raise ScheduleError(f"schedule {self.name!r}: {exc}") from None

    @property
    def shard(self) -> int:
        return shard_of(self.name)

    @property
    def expression(self) -> Cron:
        return parse_cron(self.cron, self.timezone, name=self.name)

    def as_dict(self) -> dict[str, Any]:
        """The fields, JSON-friendly (times as ISO strings)."""
        out: dict[str, Any] = {}
        for name in FIELDS:
            value = getattr(self, name)
            out[name] = value.isoformat() if isinstance(value, datetime) else value
        out["args"] = list(self.args)
        return out


def from_row(row: Sequence[Any]) -> Schedule:
    """A schedule read from the table, not re-validated (a row may predate a rule)."""
    schedule = object.__new__(Schedule)
    values = dict(zip(FIELDS, row, strict=True))
    values["args"] = tuple(values["args"])
    for f in fields(Schedule):
        object.__setattr__(schedule, f.name, values.get(f.name))
    return schedule


STATE_FIELDS = frozenset({"enabled", "declared", "next_run_at", "last_run_at", "fn"})


def check_options(options: Mapping[str, Any]) -> None:
    if state := sorted(STATE_FIELDS.intersection(options)):
        raise TypeError(f"{', '.join(state)}: kept by the table, not a schedule option")


def row_params(schedules: Sequence[Schedule], now: datetime) -> dict[str, str]:
    """The ``schedule_input`` fragment's one parameter, next fires computed from ``now``."""
    rows = [
        {
            "name": s.name, "cron": s.cron, "timezone": s.timezone, "task": s.task,
            "args": list(s.args), "kwargs": dict(s.kwargs), "queue": s.queue,
            "priority": s.priority, "max_attempts": s.max_attempts, "missed": s.missed,
            "max_catchup": s.max_catchup, "grace_seconds": s.grace_seconds, "shard": s.shard,
            "next_run_at": s.expression.next_after(now).isoformat(),
        }
        for s in schedules
    ]  # fmt: skip
    return {"rows": dumps(rows, "schedules")}


def fire_spec(s: Schedule, at: datetime, *, manual: bool = False) -> JobSpec:
    """The job of one fire: unique per (schedule, fire time), the time in ``meta``."""
    iso = at.astimezone(timezone.utc).isoformat()
    meta: dict[str, Any] = {"schedule": s.name, "scheduled_for": iso}
    if manual:
        meta["manual"] = True
    return JobSpec(
        task=s.task, args=tuple(s.args), kwargs=dict(s.kwargs), queue=s.queue or "default",
        priority=s.priority or 0, max_attempts=s.max_attempts or 3, meta=meta,
        unique_key=None if manual else f"cron:{s.name}:{iso}",
    )  # fmt: skip
