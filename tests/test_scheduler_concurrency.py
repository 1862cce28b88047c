"""Four ``pgqueue scheduler`` processes, killed and restarted: each fire still exactly once.

200 schedules fire every second for about 18 s. Meanwhile schedulers are
SIGKILLed (two, then all four at once, then one) and restarted. Jobs are
inserted already finished, so the unique index (which only covers unfinished
jobs) cannot hide a second enqueue of the same fire.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from itertools import pairwise

import psycopg
import pytest

import pgqueue

SCHEDULES = 200
PROCESSES = 4
RUN_SECONDS = 18.0
# (seconds after start, action, process indexes)
PLAN = [
    (4.0, "kill", [0, 1]), (5.0, "start", [0, 1]),
    (8.0, "kill", [0, 1, 2, 3]), (10.0, "start", [0, 1, 2, 3]),
    (13.0, "kill", [2]), (13.5, "start", [2]),
]  # fmt: skip


def spawn(dsn: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "pgqueue", "scheduler", "--dsn", dsn, "--poll-interval", "0.5"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip


def wait_ready(proc: subprocess.Popen[bytes]) -> None:
    """Until the scheduler says it runs: its SIGTERM handler is installed by then (on a
    loaded machine a process restarted seconds ago may still be importing)."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert b"pgqueue scheduler running" in line, (line, proc.poll())


@pytest.fixture
def finisher(clean_db: str) -> Iterator[None]:
    """Plays infinitely fast workers: every job is inserted already finished, so the
    unique index (unfinished jobs only) cannot absorb a second enqueue of a fire."""
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION public.test_finish_at_once() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN NEW.status := 'succeeded'; NEW.finished_at := now(); RETURN NEW; END $$"
        )
        conn.execute("CREATE TRIGGER test_finish_at_once BEFORE INSERT ON pgqueue.jobs"
                     " FOR EACH ROW EXECUTE FUNCTION public.test_finish_at_once()")  # fmt: skip
    try:
        yield
    finally:
        with psycopg.connect(clean_db, autocommit=True) as conn:
            conn.execute("DROP TRIGGER test_finish_at_once ON pgqueue.jobs")
            conn.execute("DROP FUNCTION public.test_finish_at_once()")


def db_now(dsn: str) -> datetime:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


@pytest.mark.slow
def test_killed_and_restarted_schedulers_enqueue_each_fire_exactly_once(
    clean_db: str, finisher: None
) -> None:
    with pgqueue.App(clean_db) as app:
        for i in range(SCHEDULES):
            app.add_schedule(f"tick-{i:03}", cron="* * * * * *", task="beat", args=[i])
    procs = [spawn(clean_db) for _ in range(PROCESSES)]
    started_at = db_now(clean_db)
    t0 = time.monotonic()
    try:
        for at, action, which in PLAN:
            time.sleep(max(0.0, at - (time.monotonic() - t0)))
            for i in which:
                if action == "kill":
                    procs[i].send_signal(signal.SIGKILL)
                    procs[i].wait()
                else:
                    procs[i] = spawn(clean_db)
        time.sleep(max(0.0, RUN_SECONDS - (time.monotonic() - t0)))
        stopped_at = db_now(clean_db)
        for p in procs:
            wait_ready(p)
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            assert p.wait(timeout=10) == 0  # a clean stop on SIGTERM
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    with psycopg.connect(clean_db) as conn:
        rows = conn.execute(
            "SELECT meta->>'schedule', (meta->>'scheduled_for')::timestamptz, unique_key, args"
            " FROM pgqueue.jobs"
        ).fetchall()
    keys = [r[2] for r in rows]
    assert len(keys) == len(set(keys)), "a fire was enqueued twice"
    by_schedule: dict[str, list[datetime]] = defaultdict(list)
    for name, scheduled_for, key, args in rows:
        assert key == f"cron:{name}:{scheduled_for.isoformat()}"
        assert args == [int(name.split("-")[1])]
        by_schedule[name].append(scheduled_for)
    assert len(by_schedule) == SCHEDULES
    one = timedelta(seconds=1)
    for name, fires in by_schedule.items():
        fires.sort()
        gaps = [b - a for a, b in pairwise(fires) if b - a != one]
        assert not gaps, f"{name}: fires missing or repeated: {gaps}"
        # From the first scheduler's start (Python start-up included) to the stop.
        assert fires[0] <= started_at + timedelta(seconds=5), name
        assert fires[-1] >= stopped_at - timedelta(seconds=3), name
    assert len(rows) >= SCHEDULES * (RUN_SECONDS - 6)
