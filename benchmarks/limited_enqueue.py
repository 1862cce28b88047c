"""What an exact max_depth costs a single enqueue: ``task.enqueue()`` one job at a
time into a queue without limits and into one with a ``max_depth``.

    python -m benchmarks.limited_enqueue --jobs 5000 --rounds 3

Each round enqueues ``--jobs`` jobs, each in its own transaction (the pool's
autocommit connection), into ``free`` (no limits) and then into ``capped``
(``max_depth`` far above the jobs enqueued, so nothing is refused and the
waiting jobs are counted up to the limit), the order alternating between
rounds; the queues are emptied first. Reports median, min and max jobs/s.
``capped_depth`` sets the max_depth: the count stops at it, so a larger
one reads more rows per enqueue.
"""

from __future__ import annotations

import json
import sys
import time

import psycopg

import pgqueue
from benchmarks._db import fresh_database, script_args, server_dsn, spread


def enqueue_rate(app: pgqueue.App, queue: str, jobs: int) -> float:
    task = app.task_ref("bench.noop", queue=queue)
    task.enqueue()  # warm: the pool's connection, the prepared statement
    t0 = time.perf_counter()
    for _ in range(jobs):
        task.enqueue()
    return jobs / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    args = script_args("python -m benchmarks.limited_enqueue", __doc__ or "", argv,
                       ("--jobs", int, 5000), ("--rounds", int, 3),
                       ("--capped-depth", int, 1_000_000))  # fmt: skip
    print(f"server: {server_dsn()}", file=sys.stderr)
    rates: dict[str, list[float]] = {"free": [], "capped": []}
    with fresh_database("pgqueue_bench_limited") as dsn, pgqueue.App(dsn) as app:
        app.set_queue("capped", max_depth=args.capped_depth)
        for r in range(args.rounds):
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("TRUNCATE pgqueue.jobs")
                conn.execute("VACUUM ANALYZE pgqueue.jobs")
            order = ("free", "capped") if r % 2 == 0 else ("capped", "free")
            for queue in order:
                rates[queue].append(enqueue_rate(app, queue, args.jobs))
                print(f"round {r + 1} {queue:>6}: {rates[queue][-1]:,.0f} jobs/s",
                      file=sys.stderr)  # fmt: skip
    summary = {q: spread(x) for q, x in rates.items()}
    if args.json:
        print(json.dumps({"jobs": args.jobs, **summary}, indent=2))
    else:
        for q, s in summary.items():
            print(f"single enqueue, {q:>6} queue: {s['median']:>6,} jobs/s"
                  f" (min {s['min']:,}, max {s['max']:,})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
