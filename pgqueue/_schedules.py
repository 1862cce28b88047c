"""Schedules: the ``Schedule`` value object and the operations ``App`` delegates to.

The ``pgqueue.schedules`` table is the source of truth. Schedules declared in
code (``@app.cron``, ``app.schedule``) live in ``app.schedules`` until
``sync`` upserts them (``declared = true``); those code no longer declares are
disabled, never deleted. Schedules added at runtime (``add``, ``pgqueue cron
add``) have ``declared = false`` and are left alone by ``sync``.

``next_run_at`` is computed here, in Python, from the database's clock: when a
schedule is inserted, when its expression or zone changes, when it is resumed.
The scheduler (``pgqueue.maintenance.scheduler``) advances it after each fire.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import psycopg

from pgqueue._core import JobSpec, dumps
from pgqueue._cron import Cron, check_policy, parse_cron
from pgqueue._errors import ScheduleError, ScheduleNotFound
from pgqueue._sql import query

if TYPE_CHECKING:
    from pgqueue._app import App
    from pgqueue._job import Job
    from pgqueue._task import Task

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


def _from_row(row: Sequence[Any]) -> Schedule:
    """A schedule read from the table, not re-validated (a row may predate a rule)."""
    schedule = object.__new__(Schedule)
    values = dict(zip(FIELDS, row, strict=True))
    values["args"] = tuple(values["args"])
    for f in fields(Schedule):
        object.__setattr__(schedule, f.name, values.get(f.name))
    return schedule


# -- declaration in code ------------------------------------------------------------


STATE_FIELDS = frozenset({"enabled", "declared", "next_run_at", "last_run_at", "fn"})


def _check_options(options: Mapping[str, Any]) -> None:
    if state := sorted(STATE_FIELDS.intersection(options)):
        raise TypeError(f"{', '.join(state)}: kept by the table, not a schedule option")


def declare(app: App, target: Task[Any, Any] | str, cron: str, options: dict[str, Any]) -> Schedule:
    """Add a schedule to ``app.schedules`` (upserted by ``sync``)."""
    from pgqueue._task import Task

    _check_options(options)
    name = options.pop("name", None)
    if isinstance(target, Task):
        task_name, fn = target.name, target.fn
    elif isinstance(target, str):
        task_name, fn = target, None
    else:
        raise TypeError(f"schedule a Task or a task name, not {type(target).__name__}")
    schedule = Schedule(name=name or task_name, cron=cron, task=task_name, fn=fn, **options)
    known = app.schedules.get(schedule.name)
    if known is not None and known != schedule:
        raise ScheduleError(
            f"schedule {schedule.name!r} is declared twice; give each one its own name="
        )
    app.schedules[schedule.name] = schedule
    return schedule


def resolve(app: App, schedule: Schedule) -> Schedule:
    """The schedule with its task's name and job options filled in."""
    task = app.tasks.get(schedule.task)
    if schedule.fn is not None and (task is None or task.fn is not schedule.fn):
        # @app.task stacked above @app.cron registered the function anew (maybe renamed).
        task = next((t for t in reversed(app.tasks.values()) if t.fn is schedule.fn), task)
    cfg = task.config if task is not None else None
    return replace(
        schedule,
        task=cfg.name if cfg is not None else schedule.task,
        queue=schedule.queue or (cfg.queue if cfg else "default"),
        priority=schedule.priority if schedule.priority is not None else (
            cfg.priority if cfg else 0),
        max_attempts=schedule.max_attempts or (cfg.max_attempts if cfg else 3),
    )  # fmt: skip


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


def _clock(conn: psycopg.Connection[Any]) -> datetime:
    row = conn.execute(query("schedules_clock")).fetchone()
    assert row is not None
    now: datetime = row[0]
    return now


@dataclass(frozen=True)
class SyncResult:
    """What ``app.sync_schedules()`` changed."""

    inserted: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    disabled: tuple[str, ...] = ()


def sync(app: App, *, disable_undeclared: bool | None = None) -> SyncResult:
    """Upsert ``app.schedules``; disable rows declared before but not now.

    By default (``None``) an app that declares no schedule at all disables
    nothing: it is taken for an app that does not manage schedules (another
    service's worker on the same database), not for one that dropped them all.
    """
    declared = sorted((resolve(app, s) for s in app.schedules.values()), key=lambda s: s.name)
    if disable_undeclared is None:
        disable_undeclared = bool(declared)
    with app._connection(None) as conn, conn.transaction():
        now = _clock(conn)
        rows: list[tuple[Any, ...]] = []
        if declared:
            rows = conn.execute(query("schedules_sync"), row_params(declared, now)).fetchall()
        gone: list[tuple[Any, ...]] = []
        if disable_undeclared:
            names = [s.name for s in declared]
            gone = conn.execute(query("schedules_disable_undeclared"), {"names": names}).fetchall()
    return SyncResult(
        inserted=tuple(r[0] for r in rows if r[1]),
        updated=tuple(r[0] for r in rows if not r[1]),
        disabled=tuple(r[0] for r in gone),
    )


# -- runtime operations ---------------------------------------------------------------


def add(
    app: App, name: str, cron: str, task: str, options: dict[str, Any], *, replace_existing: bool
) -> Schedule:
    """Insert a runtime schedule (``declared = false``); an existing name is an error
    unless ``replace_existing``."""
    _check_options(options)
    schedule = resolve(app, Schedule(name=name, cron=cron, task=task, **options))
    with app._connection(None) as conn, conn.transaction():
        params: dict[str, Any] = {**row_params([schedule], _clock(conn)),
                                  "replace": replace_existing}  # fmt: skip
        if conn.execute(query("schedule_add"), params).fetchone() is None:
            raise ScheduleError(f"schedule {schedule.name!r} already exists")
        row = conn.execute(query("schedule_get"), {"name": schedule.name}).fetchone()
    assert row is not None
    return _from_row(row)


def list_all(app: App) -> list[Schedule]:
    with app._connection(None) as conn:
        return [_from_row(r) for r in conn.execute(query("schedules_list")).fetchall()]


def get(app: App, name: str) -> Schedule:
    with app._connection(None) as conn, conn.transaction():
        row = conn.execute(query("schedule_get"), {"name": name}).fetchone()
    if row is None:
        raise ScheduleNotFound(f"no schedule named {name!r}")
    return _from_row(row)


def _change(app: App, sql_name: str, name: str) -> None:
    with app._connection(None) as conn, conn.transaction():
        if conn.execute(query(sql_name), {"name": name}).fetchone() is None:
            raise ScheduleNotFound(f"no schedule named {name!r}")


def pause(app: App, name: str) -> None:
    _change(app, "schedule_pause", name)


def remove(app: App, name: str) -> None:
    _change(app, "schedule_remove", name)


def resume(app: App, name: str) -> Schedule:
    """Enable again; the next fire is the first after now (a pause is not caught up)."""
    with app._connection(None) as conn, conn.transaction():
        row = conn.execute(query("schedule_get"), {"name": name}).fetchone()
        if row is None:
            raise ScheduleNotFound(f"no schedule named {name!r}")
        current = _from_row(row)
        if not current.enabled:
            nxt = parse_cron(current.cron, current.timezone, name=name).next_after(_clock(conn))
            conn.execute(query("schedule_resume"), {"name": name, "next_run_at": nxt})
            current = replace(current, enabled=True, next_run_at=nxt)
    return current


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


def run_now(app: App, name: str) -> Job:
    """Enqueue one job of the schedule now, outside its timetable (``meta.manual``)."""
    schedule = get(app, name)
    spec = fire_spec(schedule, datetime.now(timezone.utc), manual=True)
    return app.enqueue_many([spec])[0]
