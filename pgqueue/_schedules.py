"""Operations on ``pgqueue.schedules``: sync the declared ones, add, list, pause...

The table is the source of truth. Schedules declared in code (``@app.cron``,
``app.schedule``) live in the ``Registry`` until ``sync`` upserts them
(``declared = true``); those code no longer declares are disabled, never
deleted. Schedules added at runtime (``add``, ``pgqueue cron add``) have
``declared = false`` and are left alone by ``sync``.

``next_run_at`` is computed here, in Python, from the database's clock: when a
schedule is inserted, when its expression or zone changes, when it is resumed.
The scheduler (``pgqueue.maintenance.scheduler``) advances it after each fire.

Each operation is a generator of statements (see ``_db``), driven in one
transaction by ``Database.run`` or ``Database.run_async``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from pgqueue._core import JobSpec
from pgqueue._cron import parse_cron
from pgqueue._db import Operation, Statement
from pgqueue._errors import ScheduleError, ScheduleNotFound
from pgqueue._registry import Registry
from pgqueue._schedule import Schedule, check_options, fire_spec, from_row, row_params
from pgqueue._sql import query

# Re-exported for the scheduler and the CLI, which read schedules as values.
__all__ = ["Schedule", "SyncResult", "fire_spec", "from_row", "row_params"]


def _clock() -> Operation[datetime]:
    (row,) = yield Statement(query("schedules_clock"))
    now: datetime = row[0]
    return now


@dataclass(frozen=True)
class SyncResult:
    """What ``app.sync_schedules()`` changed."""

    inserted: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    disabled: tuple[str, ...] = ()


def sync(declared: Sequence[Schedule], *, disable_undeclared: bool | None = None
         ) -> Operation[SyncResult]:  # fmt: skip
    """Upsert the ``declared`` schedules; disable rows declared before but not now.

    By default (``None``) an app that declares no schedule at all disables
    nothing: it is taken for an app that does not manage schedules (another
    service's worker on the same database), not for one that dropped them all.
    """
    if disable_undeclared is None:
        disable_undeclared = bool(declared)
    now = yield from _clock()
    rows: list[Any] = []
    if declared:
        rows = yield Statement(query("schedules_sync"), row_params(declared, now))
    gone: list[Any] = []
    if disable_undeclared:
        names = [s.name for s in declared]
        gone = yield Statement(query("schedules_disable_undeclared"), {"names": names})
    return SyncResult(
        inserted=tuple(r[0] for r in rows if r[1]),
        updated=tuple(r[0] for r in rows if not r[1]),
        disabled=tuple(r[0] for r in gone),
    )


def add(
    registry: Registry, name: str, cron: str, task: str, options: dict[str, Any],
    *, replace_existing: bool,
) -> Operation[Schedule]:  # fmt: skip
    """Insert a runtime schedule (``declared = false``); an existing name is an error
    unless ``replace_existing``."""
    check_options(options)
    schedule = registry.resolve(Schedule(name=name, cron=cron, task=task, **options))
    now = yield from _clock()
    params: dict[str, Any] = {**row_params([schedule], now), "replace": replace_existing}
    if not (yield Statement(query("schedule_add"), params)):
        raise ScheduleError(f"schedule {schedule.name!r} already exists")
    return (yield from get(schedule.name))


def list_all() -> Operation[list[Schedule]]:
    rows = yield Statement(query("schedules_list"))
    return [from_row(r) for r in rows]


def get(name: str) -> Operation[Schedule]:
    rows = yield Statement(query("schedule_get"), {"name": name})
    if not rows:
        raise ScheduleNotFound(f"no schedule named {name!r}")
    return from_row(rows[0])


def _change(sql_name: str, name: str) -> Operation[None]:
    if not (yield Statement(query(sql_name), {"name": name})):
        raise ScheduleNotFound(f"no schedule named {name!r}")


def pause(name: str) -> Operation[None]:
    return _change("schedule_pause", name)


def remove(name: str) -> Operation[None]:
    return _change("schedule_remove", name)


def resume(name: str) -> Operation[Schedule]:
    """Enable again; the next fire is the first after now (a pause is not caught up)."""
    current = yield from get(name)
    if not current.enabled:
        now = yield from _clock()
        nxt = parse_cron(current.cron, current.timezone, name=name).next_after(now)
        yield Statement(query("schedule_resume"), {"name": name, "next_run_at": nxt})
        current = replace(current, enabled=True, next_run_at=nxt)
    return current


def run_now_spec(schedule: Schedule) -> JobSpec:
    """The job of a fire now, outside the schedule's timetable (``meta.manual``)."""
    return fire_spec(schedule, datetime.now(timezone.utc), manual=True)
