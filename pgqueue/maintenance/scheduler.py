"""The scheduler: enqueues due cron fires, each exactly once, from any number of processes.

A :class:`~pgqueue.maintenance._service.Service`: on a daemon thread of its
own with one dedicated connection (``start()`` returns at once, ``stop()`` is
idempotent), or in the foreground (``run()``, for ``pgqueue scheduler``). It
needs no task code: it enqueues by task name, from the rows of ``pgqueue.schedules``.

A pass:

1. ``scheduler_shards``: each shard's earliest ``next_run_at``, one index probe
   per shard, in one round trip.
2. For each due shard, in random order (concurrent schedulers spread out), one
   transaction: ``scheduler_claim`` takes ``pg_try_advisory_xact_lock(LOCK_KEY,
   shard)`` (held elsewhere: skip the shard) and locks up to ``batch_size`` due
   rows ``FOR UPDATE SKIP LOCKED`` through ``schedules_due_idx``; Python plans
   the fires (``_cron.plan``: missed-window policy, DST); the shared ``enqueue``
   statement inserts every fire of the shard at once, each with the unique key
   ``cron:<schedule>:<fire time>`` and ``meta = {"schedule", "scheduled_for"}``;
   ``scheduler_advance`` moves ``next_run_at`` and ``last_run_at``; commit.
   A crash before the commit leaves no trace, so another scheduler redoes it.
3. Sleep until the earliest ``next_run_at`` (at most ``poll_interval``).

The cost of a pass follows the number of due schedules, not the table's size.
``tick(now=...)`` runs one pass at an injected time (tests, outages).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg

from pgqueue import _schedules
from pgqueue._core import JobSpec, enqueue_params
from pgqueue._cron import Plan, parse_cron, plan
from pgqueue._errors import ScheduleError
from pgqueue._keys import SCHEDULER_LOCK
from pgqueue._schedule import SHARDS, Schedule, fire_spec
from pgqueue._sql import query
from pgqueue.maintenance._service import Service

if TYPE_CHECKING:
    from pgqueue._db import Database
    from pgqueue._registry import Registry

LOCK_KEY = SCHEDULER_LOCK  # with the shard: pg_try_advisory_xact_lock(key, shard)
POLL_INTERVAL = 1.0  # seconds between passes, at most
BATCH_SIZE = 500  # due schedules per shard transaction
WAKE_JITTER = 0.02  # seconds of random delay after a wake-up (spreads schedulers)
BUSY_RETRY = 0.05  # seconds before retrying a due shard another scheduler holds

logger = logging.getLogger("pgqueue.scheduler")


@dataclass(frozen=True)
class TickResult:
    """What one pass did."""

    now: datetime  # the clock the pass used (the database's, or the injected one)
    fired: int = 0  # jobs sent to ``enqueue``
    schedules: int = 0  # due schedules handled
    busy: int = 0  # due shards skipped: another scheduler held them
    next_due: datetime | None = None  # the earliest next_run_at seen before the pass


class Scheduler(Service):
    """Enqueues due cron fires; see the module docstring.

    ``sync=True`` upserts the registry's schedules (``app.sync_schedules()``) when the
    loop starts, retrying while the database is unreachable.
    """

    name = "scheduler"

    def __init__(
        self,
        database: Database,
        registry: Registry,
        *,
        sync: bool = True,
        poll_interval: float = POLL_INTERVAL,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        if poll_interval <= 0 or batch_size < 1:
            raise ValueError("scheduler poll_interval must be > 0 and batch_size >= 1")
        super().__init__(database, poll_interval)
        self._registry = registry
        self.sync = sync
        self._synced = not sync
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self.shards = SHARDS
        self._random = random.Random()
        self.fired = 0

    def expected(self, exc: Exception) -> bool:
        return super().expected(exc) or isinstance(exc, ScheduleError)

    def loop_pass(self) -> float:
        if not self._synced:
            self._database.run(_schedules.sync(self._registry.declared()), transaction=True)
            self._synced = True
        return self._delay(self.tick())

    def _delay(self, result: TickResult) -> float:
        if result.schedules:
            return 0.0  # something fired: look again at once (more may be due)
        if result.busy:
            return BUSY_RETRY
        delay = self.poll_interval
        if result.next_due is not None:
            delay = min(delay, max(0.0, (result.next_due - result.now).total_seconds()))
        return delay + self._random.uniform(0, WAKE_JITTER)

    # -- one pass ----------------------------------------------------------------

    def tick(self, now: datetime | None = None) -> TickResult:
        """One pass over the due shards; ``now`` replaces the database clock.

        Not to be called while the loop runs: the two would share one connection.
        """
        return self.db.run(lambda conn: self._tick(conn, now))

    def _tick(self, conn: psycopg.Connection[Any], now: datetime | None) -> TickResult:
        rows = conn.execute(query("scheduler_shards"), {"now": now, "shards": self.shards})
        shards = rows.fetchall()
        clock: datetime = shards[0][2]
        due = [shard for shard, first, _ in shards if first is not None and first <= clock]
        upcoming = [first for _, first, _ in shards if first is not None]
        self._random.shuffle(due)
        fired = handled = busy = 0
        for shard in due:
            n_fired, n_handled, locked = self._shard(conn, shard, now)
            fired += n_fired
            handled += n_handled
            busy += not locked
        self.fired += fired
        return TickResult(clock, fired, handled, busy, min(upcoming, default=None))

    def _shard(
        self, conn: psycopg.Connection[Any], shard: int, now: datetime | None
    ) -> tuple[int, int, bool]:
        """Fire the shard's due schedules, batch after batch.

        Returns (fired, handled, locked); an empty first claim counts as not
        locked: another scheduler held the shard (or had just emptied it).
        """
        fired = handled = 0
        params = {"lock_key": LOCK_KEY, "shard": shard, "now": now, "limit": self.batch_size}
        while True:
            with conn.transaction():
                rows = conn.execute(query("scheduler_claim"), params).fetchall()
                if not rows:
                    return fired, handled, handled > 0
                specs, names, nexts, lasts = self._plan_rows(rows)
                with conn.pipeline():
                    if specs:
                        conn.execute(query("enqueue"), enqueue_params(specs, force=True))
                    conn.execute(query("scheduler_advance"),
                                 {"names": names, "next": nexts, "last": lasts})  # fmt: skip
            fired += len(specs)
            handled += len(rows)
            if len(rows) < self.batch_size:
                return fired, handled, True

    def _plan_rows(
        self, rows: list[tuple[Any, ...]]
    ) -> tuple[list[JobSpec], list[str], list[datetime | None], list[datetime | None]]:
        specs: list[JobSpec] = []
        names: list[str] = []
        nexts: list[datetime | None] = []
        lasts: list[datetime | None] = []
        for row in rows:
            (name, cron, tz, task, args, kwargs, queue, priority, max_attempts, missed,
             max_catchup, grace, next_run_at, now) = row  # fmt: skip
            names.append(name)
            try:
                fires = plan_row(name, cron, tz, next_run_at, now, missed, max_catchup, grace)
            except ScheduleError as exc:
                logger.error("event=schedule_parked schedule=%s error=%r", name, str(exc))
                nexts.append(None)
                lasts.append(None)
                continue
            if fires.dropped:
                logger.info("event=schedule_missed schedule=%s policy=%s", name, missed)
            schedule = _row_schedule(name, cron, tz, task, args, kwargs, queue, priority,
                                     max_attempts)  # fmt: skip
            specs.extend(fire_spec(schedule, at) for at in fires.fires)
            nexts.append(fires.next_run_at)
            lasts.append(fires.fires[-1] if fires.fires else None)
        return specs, names, nexts, lasts

def plan_row(
    name: str, cron: str, tz: str, next_run_at: datetime, now: datetime,
    missed: str, max_catchup: int, grace: float,
) -> Plan:  # fmt: skip
    """The plan for one due row (``ScheduleError`` when its expression is invalid)."""
    expression = parse_cron(cron, tz, name=name)
    return plan(expression, next_run_at, now, missed=missed, max_catchup=max_catchup,
                grace=grace)  # fmt: skip


def _row_schedule(
    name: str, cron: str, tz: str, task: str, args: Any, kwargs: Any, queue: str,
    priority: int, max_attempts: int,
) -> Schedule:  # fmt: skip
    # Built without validation: the row was validated when written; fire_spec's
    # JobSpec still checks what the jobs table needs.
    schedule = object.__new__(Schedule)
    for key, value in (("name", name), ("cron", cron), ("timezone", tz), ("task", task),
                       ("args", tuple(args)), ("kwargs", kwargs), ("queue", queue),
                       ("priority", priority), ("max_attempts", max_attempts)):  # fmt: skip
        object.__setattr__(schedule, key, value)
    return schedule
