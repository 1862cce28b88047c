"""Scheduler tick time vs table size: 100 due schedules among 1,000 and among 100,000.

A tick's cost should follow the number of DUE schedules (one index probe per
shard, then only the due rows), so both tables should give about the same
figures. Time is injected (``tick(now=...)``), so nothing waits for a clock.

    python -m benchmarks.scheduler_tick [--sizes 1000,100000] [--due 100] [--runs 30]

Each run resets the due schedules and empties the jobs table, then times one
tick that enqueues the 100 fires (one enqueue statement per shard), and one
idle tick (nothing due) right after it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg

import pgqueue
from benchmarks._db import fresh_database
from pgqueue._schedule import shard_of
from pgqueue.maintenance.scheduler import Scheduler

T = datetime(2030, 1, 1, tzinfo=timezone.utc)  # the due schedules' next_run_at
FAR = T + timedelta(days=365)  # everyone else's
COLUMNS = "name, cron, timezone, task, shard, next_run_at"


def load(dsn: str, total: int, due: int) -> list[str]:
    """``total`` schedules, ``due`` of them (spread over the shards) due at T."""
    due_names = [f"due-{i:06}" for i in range(due)]
    copy_sql = f"COPY pgqueue.schedules ({COLUMNS}) FROM STDIN"
    with psycopg.connect(dsn) as conn, conn.cursor() as cur, cur.copy(copy_sql) as copy:
        for name in due_names:
            copy.write_row((name, "* * * * *", "UTC", "bench.tick", shard_of(name), T))
        for i in range(total - due):
            name = f"idle-{i:06}"
            copy.write_row((name, "0 0 1 1 *", "UTC", "bench.tick", shard_of(name), FAR))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE pgqueue.schedules")
    return due_names


def reset(dsn: str, names: list[str]) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE pgqueue.jobs")
        conn.execute("UPDATE pgqueue.schedules SET next_run_at = %s WHERE name = ANY(%s)",
                     (T, names))  # fmt: skip


def bench_size(total: int, due: int, runs: int) -> dict[str, Any]:
    with fresh_database("pgqueue_bench_cron") as dsn, pgqueue.App(dsn) as app:
        names = load(dsn, total, due)
        scheduler = Scheduler(app.database, app.registry, sync=False)
        busy: list[float] = []
        idle: list[float] = []
        now = T + timedelta(seconds=1)
        try:
            scheduler.tick(now=now - timedelta(seconds=2))  # connect, prepare
            for _ in range(runs + 2):
                reset(dsn, names)
                started = time.perf_counter()
                result = scheduler.tick(now=now)
                busy.append(time.perf_counter() - started)
                assert result.fired == due, result
                started = time.perf_counter()
                assert scheduler.tick(now=now).fired == 0
                idle.append(time.perf_counter() - started)
        finally:
            scheduler.close()
        busy, idle = busy[2:], idle[2:]  # warm-up runs out
    return {
        "schedules": total,
        "due": due,
        "tick_ms": _stats(busy),
        "idle_tick_ms": _stats(idle),
    }


def _stats(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    return {
        "median": round(statistics.median(ms), 2),
        "p90": round(ms[int(len(ms) * 0.9) - 1], 2),
        "min": round(ms[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--due", type=int, default=100)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    results = [bench_size(int(s), args.due, args.runs) for s in args.sizes.split(",")]
    for r in results:
        t, i = r["tick_ms"], r["idle_tick_ms"]
        print(f"{r['schedules']:>9,} schedules, {r['due']} due: tick median {t['median']:6.2f} ms"
              f" (p90 {t['p90']:.2f}); idle tick median {i['median']:5.2f} ms (p90 {i['p90']:.2f})")
    if len(results) > 1:
        ratio = results[-1]["tick_ms"]["median"] / results[0]["tick_ms"]["median"]
        print(f"largest/smallest tick median ratio: {ratio:.2f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
