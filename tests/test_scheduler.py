"""The scheduler against a real database: fires, policies after an outage, locks, the loop.

Time is injected (``tick(now=...)``), never slept, except in the loop test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

import psycopg
import pytest

import pgqueue
from pgqueue._schedule import shard_of
from pgqueue.maintenance.scheduler import LOCK_KEY, Scheduler


@pytest.fixture
def app(clean_db: str) -> Iterator[pgqueue.App]:
    with pgqueue.App(clean_db) as app:
        yield app


@pytest.fixture
def scheduler(app: pgqueue.App) -> Iterator[Scheduler]:
    runner = Scheduler(app.database, app.registry, sync=False)
    yield runner
    runner.close()


def jobs(dsn: str) -> list[dict[str, Any]]:
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, task, queue, priority, args, kwargs, unique_key, meta,"
                    " max_attempts FROM pgqueue.jobs ORDER BY id")  # fmt: skip
        names = [d.name for d in cur.description or ()]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def fired_at(dsn: str) -> list[str]:
    return [j["meta"]["scheduled_for"] for j in jobs(dsn)]


def test_a_due_fire_is_enqueued_once_with_its_scheduled_time(
    app: pgqueue.App, scheduler: Scheduler
) -> None:
    s = app.add_schedule("hourly", cron="0 * * * *", task="reports.build", args=[1],
                         kwargs={"full": True}, queue="reports", priority=4,
                         max_attempts=5)  # fmt: skip
    due = s.next_run_at
    assert due is not None
    assert scheduler.tick(now=due - timedelta(seconds=1)).fired == 0
    result = scheduler.tick(now=due + timedelta(seconds=1))
    assert (result.fired, result.schedules) == (1, 1)
    (job,) = jobs(app.dsn)
    iso = due.isoformat()
    assert job["unique_key"] == f"cron:hourly:{iso}"
    assert job["meta"] == {"schedule": "hourly", "scheduled_for": iso}
    assert (job["task"], job["queue"], job["priority"], job["max_attempts"]) == (
        "reports.build", "reports", 4, 5)  # fmt: skip
    assert (job["args"], job["kwargs"]) == ([1], {"full": True})
    after = app.get_schedule("hourly")
    assert after.last_run_at == due and after.next_run_at == due + timedelta(hours=1)
    # The same instant again: nothing more.
    assert scheduler.tick(now=due + timedelta(seconds=2)).fired == 0
    assert len(jobs(app.dsn)) == 1


def test_the_scheduler_needs_no_task_code(clean_db: str) -> None:
    with pgqueue.App(clean_db) as admin:
        s = admin.add_schedule("remote", cron="* * * * * *", task="elsewhere.defined")
    assert s.next_run_at is not None
    bare_app = pgqueue.App(clean_db)  # no tasks, no declarations
    bare = Scheduler(bare_app.database, bare_app.registry, sync=False)
    try:
        assert bare.tick(now=s.next_run_at).fired == 1
    finally:
        bare.close()
    assert jobs(clean_db)[0]["task"] == "elsewhere.defined"


@pytest.mark.parametrize(
    "missed, max_catchup, expected_hours",
    [("skip", 10, []), ("latest", 10, [5]), ("all", 10, [0, 1, 2, 3, 4, 5]), ("all", 3, [3, 4, 5])],
)
def test_missed_window_policy_after_an_outage(
    app: pgqueue.App, scheduler: Scheduler, missed: str, max_catchup: int,
    expected_hours: list[int],
) -> None:  # fmt: skip
    s = app.add_schedule("h", cron="0 * * * *", task="t", missed=missed, max_catchup=max_catchup)
    t0 = s.next_run_at
    assert t0 is not None
    # Everything was down from before t0 until t0 + 5h10m.
    scheduler.tick(now=t0 + timedelta(hours=5, minutes=10))
    assert fired_at(app.dsn) == [(t0 + timedelta(hours=h)).isoformat() for h in expected_hours]
    after = app.get_schedule("h")
    assert after.next_run_at == t0 + timedelta(hours=6)
    if expected_hours:
        assert after.last_run_at == t0 + timedelta(hours=expected_hours[-1])


def test_a_late_fire_within_the_grace_window_is_on_time(
    app: pgqueue.App, scheduler: Scheduler
) -> None:
    s = app.add_schedule("g", cron="0 * * * *", task="t", missed="skip", grace_seconds=120)
    assert s.next_run_at is not None
    scheduler.tick(now=s.next_run_at + timedelta(seconds=119))
    assert fired_at(app.dsn) == [s.next_run_at.isoformat()]


def test_a_tick_only_reads_due_schedules(app: pgqueue.App, scheduler: Scheduler) -> None:
    due = app.add_schedule("due", cron="* * * * *", task="t")
    later = app.add_schedule("later", cron="0 0 1 1 *", task="t")
    assert due.next_run_at is not None
    result = scheduler.tick(now=due.next_run_at)
    assert result.schedules == 1
    assert app.get_schedule("later").next_run_at == later.next_run_at


def test_paused_schedules_do_not_fire(app: pgqueue.App, scheduler: Scheduler) -> None:
    s = app.add_schedule("p", cron="* * * * *", task="t")
    app.pause_schedule("p")
    assert s.next_run_at is not None
    assert scheduler.tick(now=s.next_run_at + timedelta(minutes=5)).schedules == 0


def test_a_shard_held_by_another_scheduler_is_skipped(
    app: pgqueue.App, scheduler: Scheduler
) -> None:
    s = app.add_schedule("busy", cron="* * * * *", task="t")
    assert s.next_run_at is not None
    with psycopg.connect(app.dsn) as other, other.transaction():
        other.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_KEY, shard_of("busy")))
        result = scheduler.tick(now=s.next_run_at)
        assert (result.fired, result.busy) == (0, 1)
    assert scheduler.tick(now=s.next_run_at).fired == 1


def test_an_unparseable_row_is_parked_without_stopping_the_others(
    app: pgqueue.App, scheduler: Scheduler
) -> None:
    good = app.add_schedule("good", cron="* * * * *", task="t")
    app.add_schedule("bad", cron="* * * * *", task="t")
    with psycopg.connect(app.dsn, autocommit=True) as conn:  # edited by hand, badly
        conn.execute("UPDATE pgqueue.schedules SET cron = 'every day' WHERE name = 'bad'")
    assert good.next_run_at is not None
    result = scheduler.tick(now=good.next_run_at)
    assert result.fired == 1 and [j["meta"]["schedule"] for j in jobs(app.dsn)] == ["good"]
    assert app.get_schedule("bad").next_run_at is None


def test_concurrent_ticks_enqueue_each_fire_once(app: pgqueue.App) -> None:
    starts: dict[str, datetime] = {}
    for i in range(200):
        s = app.add_schedule(f"s{i:03}", cron="* * * * * *", task="t", grace_seconds=3600)
        assert s.next_run_at is not None
        starts[s.name] = s.next_run_at
    # Each schedule's first fire is the first whole second after the database clock of
    # ITS OWN insert: when the 200 inserts straddle a second boundary, the later ones
    # start one second later, and the instants before that were never fires of theirs
    # (the scheduler rightly does not enqueue them). So the expected fires are derived
    # per schedule from its own first fire, and the injected clock runs from the
    # earliest first fire to 29 s past the latest: at least 30 fires per schedule.
    begin, end = min(starts.values()), max(starts.values()) + timedelta(seconds=29)
    clock = [begin + timedelta(seconds=i) for i in range(int((end - begin).total_seconds()) + 1)]
    expected = sorted((name, at) for name, start in starts.items() for at in clock if at >= start)
    # Eight schedulers, each ticking through the same injected seconds, at once.
    runners = [Scheduler(app.database, app.registry, sync=False, batch_size=37) for _ in range(8)]
    barrier = threading.Barrier(len(runners))

    def run(runner: Scheduler) -> None:
        barrier.wait()
        for now in clock:
            runner.tick(now=now)

    threads = [threading.Thread(target=run, args=(r,)) for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Racing runners may end a tick with due rows left in a shard (its lock was held by
    # another runner, or a batch came back short as others moved rows on); the loop
    # then ticks again at once, or BUSY_RETRY later (Scheduler._delay). This stands for
    # that next pass: one tick with no competitor drains every due shard.
    runners[0].tick(now=clock[-1])
    for r in runners:
        r.close()
    got = sorted((j["meta"]["schedule"], datetime.fromisoformat(j["meta"]["scheduled_for"]))
                 for j in jobs(app.dsn))  # fmt: skip
    assert got == expected  # each fire exactly once: none lost, none doubled, none extra
    # The unique index (unfinished jobs) would absorb a second enqueue of a fire: count
    # what the runners sent as well.
    assert sum(r.fired for r in runners) == len(expected)
    for s in app.list_schedules():
        assert (s.last_run_at, s.next_run_at) == (clock[-1], clock[-1] + timedelta(seconds=1))


def test_start_fires_on_time_and_stop_is_idempotent(app: pgqueue.App) -> None:
    @app.cron("* * * * * *", name="every-second")
    @app.task(name="beat")
    def beat() -> None: ...

    runner = Scheduler(app.database, app.registry)  # syncs app.schedules first
    runner.stop()  # before start: harmless
    started = time.monotonic()
    runner.start()
    assert time.monotonic() - started < 0.5  # does not block
    assert runner.running
    deadline = time.monotonic() + 10
    while len(jobs(app.dsn)) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    runner.stop()
    runner.stop()
    assert not runner.running
    fires = [datetime.fromisoformat(s) for s in fired_at(app.dsn)]
    assert len(fires) >= 3
    assert {b - a for a, b in pairwise(fires)} == {timedelta(seconds=1)}
    # Enqueued promptly: each job within a second of its scheduled time.
    with psycopg.connect(app.dsn) as conn:
        lags = conn.execute("SELECT max(created_at - (meta->>'scheduled_for')::timestamptz)"
                            " FROM pgqueue.jobs").fetchone()  # fmt: skip
    assert lags is not None and lags[0] < timedelta(seconds=1)


def test_fires_are_not_refused_by_a_full_queue(app: pgqueue.App, scheduler: Scheduler) -> None:
    # max_depth is back-pressure for producers; a schedule is bounded by its cadence.
    app.set_queue("reports", max_depth=0)
    s = app.add_schedule("hourly", cron="0 * * * *", task="reports.build", queue="reports")
    assert s.next_run_at is not None
    assert scheduler.tick(now=s.next_run_at + timedelta(seconds=1)).fired == 1
    assert [j["queue"] for j in jobs(app.dsn)] == ["reports"]
    with pytest.raises(pgqueue.QueueFull):
        app.task_ref("reports.build", queue="reports").enqueue()
