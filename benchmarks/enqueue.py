"""Enqueue throughput: ``enqueue_many`` in one statement, and single ``enqueue`` calls.

Each figure is set against a raw psycopg baseline doing the same work
(COPY of the same rows; INSERT-and-commit per row).

    python -m benchmarks.enqueue [--bulk 100000] [--single 10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import psycopg

import pgqueue
from benchmarks._db import fresh_database


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def truncate(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE pgqueue.jobs")
        conn.execute("VACUUM ANALYZE pgqueue.jobs")


def bench(bulk: int, single: int, runs: int) -> dict[str, Any]:
    results: dict[str, list[float]] = {k: [] for k in ("bulk", "copy", "single", "raw_insert")}
    with fresh_database() as dsn, pgqueue.App(dsn) as app:

        @app.task(name="bench.noop")
        def noop(i: int) -> None:
            return None

        for _ in range(runs):
            truncate(dsn)
            results["bulk"].append(
                bulk / timed(lambda: app.enqueue_many([noop.job(i) for i in range(bulk)]))
            )
            truncate(dsn)

            def raw_copy() -> None:
                with psycopg.connect(dsn) as conn, conn.cursor() as cur:
                    cols = "queue, task, args, kwargs, priority, max_attempts"
                    with cur.copy(f"COPY pgqueue.jobs ({cols}) FROM STDIN") as copy:
                        for i in range(bulk):
                            copy.write_row(("default", "bench.noop", f"[{i}]", "{}", 0, 3))

            results["copy"].append(bulk / timed(raw_copy))
            truncate(dsn)

            def singles() -> None:
                for i in range(single):
                    noop.enqueue(i)

            results["single"].append(single / timed(singles))
            truncate(dsn)

            def raw_inserts() -> None:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    for i in range(single):
                        conn.execute(
                            "INSERT INTO pgqueue.jobs (queue, task, args) VALUES (%s, %s, %s)",
                            ("default", "bench.noop", f"[{i}]"),
                        )

            results["raw_insert"].append(single / timed(raw_inserts))
    summary = {
        k: {"median": statistics.median(v), "min": min(v), "max": max(v)}
        for k, v in results.items()
    }
    summary["ratios"] = {
        "bulk_vs_copy": summary["bulk"]["median"] / summary["copy"]["median"],
        "single_vs_raw_insert": summary["single"]["median"] / summary["raw_insert"]["median"],
    }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bulk", type=int, default=100_000)
    parser.add_argument("--single", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    summary = bench(args.bulk, args.single, args.runs)
    labels = {
        "bulk": f"enqueue_many({args.bulk:,})",
        "copy": f"raw COPY ({args.bulk:,} rows)",
        "single": f"enqueue() x {args.single:,}",
        "raw_insert": f"raw INSERT+commit x {args.single:,}",
    }
    for key, label in labels.items():
        s = summary[key]
        spread = f"(min {s['min']:,.0f}, max {s['max']:,.0f})"
        print(f"{label:<32} {s['median']:>10,.0f} jobs/s  {spread}")
    for key, ratio in summary["ratios"].items():
        print(f"{key:<32} {ratio:>10.2f}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
