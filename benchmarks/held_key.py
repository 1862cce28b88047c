"""What an enqueue whose unique key is held costs: the insert is skipped and the
holder looked up (since migration 0006 through ``pgqueue.unique_holders``, a
``SECURITY DEFINER`` function, so that producer roles can do it too).

    python -m benchmarks.held_key --jobs 3000 --rounds 5

Each round: ``--jobs`` single enqueues of one held key (each returns the holder),
then ``--jobs`` / 100 batches of 100 jobs whose keys are all held
(``enqueue_many``), and, for reference, ``--jobs`` single enqueues without a key.
Reports the median, min and max jobs/s of each.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable

import psycopg

import pgqueue
from benchmarks._db import fresh_database, script_args, server_dsn, spread


def _rate(n: int, run: Callable[[], object], times: int) -> float:
    t0 = time.perf_counter()
    for _ in range(times):
        run()
    return n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    args = script_args("python -m benchmarks.held_key", __doc__ or "", argv,
                       ("--jobs", int, 3000), ("--rounds", int, 5))  # fmt: skip
    print(f"server: {server_dsn()}", file=sys.stderr)
    rates: dict[str, list[float]] = {"held single": [], "held batch": [], "no key": []}
    with fresh_database("pgqueue_bench_held") as dsn, pgqueue.App(dsn) as app:
        task = app.task_ref("bench.noop")
        keyed = task.options(unique_key="held")
        batch = [task.options(unique_key=f"k{i}").job(i) for i in range(100)]
        for r in range(args.rounds):
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("TRUNCATE pgqueue.jobs")
            keyed.enqueue(0)
            app.enqueue_many(batch)  # every key of the batch is held from now on
            n = args.jobs
            rates["held single"].append(_rate(n, lambda: keyed.enqueue(1), n))
            rates["held batch"].append(_rate(n, lambda: app.enqueue_many(batch), n // 100))
            rates["no key"].append(_rate(n, lambda: task.enqueue(2), n))
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in rates.items()),
                  file=sys.stderr)  # fmt: skip
    summary = {k: spread(v) for k, v in rates.items()}
    if args.json:
        print(json.dumps({"jobs": args.jobs, **summary}, indent=2))
    else:
        for k, s in summary.items():
            print(f"{k:>12}: {s['median']:>7,} jobs/s (min {s['min']:,}, max {s['max']:,})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
