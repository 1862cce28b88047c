"""Drain throughput and wake-up latency of the worker.

    python -m benchmarks.drain --jobs 20000 --processes 1 --concurrency 100

1. Creates a fresh database on the server (``--dsn``, else ``$PGQUEUE_BENCH_DSN``,
   else ``postgresql://postgres@127.0.0.1:5432/postgres``), migrates it, and
   drops it at the end (``benchmarks._db``).
2. Drain: enqueues ``--jobs`` no-op jobs (sync, or ``--async``), then runs a
   burst worker (``--processes``, ``--concurrency``) until the queue is empty.
   Reports jobs/s over the wall time of the run (process start included) and
   over the jobs' own span (first claim to last completion, from the table).
3. Latency: an idle worker process, then ``--latency-jobs`` jobs enqueued one at
   a time, ``--spacing`` seconds apart; reports p50/p90/p99/max of
   ``started_at - created_at`` (both taken by the server's clock: from the
   enqueue transaction to the claim).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time
from typing import Any

import psycopg

import pgqueue
from benchmarks._db import fresh_database, server_dsn

ENQUEUE_CHUNK = 5000


def noop() -> None:
    return None


async def anoop() -> None:
    return None


def make_app(dsn: str) -> pgqueue.App:
    app = pgqueue.App(dsn)
    app.task(name="bench.noop", queue="bench")(noop)
    app.task(name="bench.anoop", queue="bench")(anoop)
    return app


def drained(dsn: str) -> tuple[int, float | None]:
    """Jobs succeeded in queue ``bench``, and their span (first claim to last completion)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE status = 'succeeded'),"
            " extract(epoch FROM max(finished_at) - min(started_at))::float8"
            " FROM pgqueue.jobs WHERE queue = 'bench'"
        ).fetchone()
    return (int(row[0]), row[1]) if row else (0, None)


def drain(dsn: str, args: argparse.Namespace) -> dict[str, Any]:
    app = make_app(dsn)
    task = app.tasks["bench.anoop" if args.use_async else "bench.noop"]
    t0 = time.perf_counter()
    for start in range(0, args.jobs, ENQUEUE_CHUNK):
        app.enqueue_many([task.job() for _ in range(min(ENQUEUE_CHUNK, args.jobs - start))])
    enqueue_s = time.perf_counter() - t0
    app.close()  # the worker processes open their own connections
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE pgqueue.jobs")
    t0 = time.perf_counter()
    code = app.run_worker(
        "bench",
        concurrency=args.concurrency,
        processes=args.processes,
        until_empty=True,
        rescue=False,
    )
    wall = time.perf_counter() - t0
    done, span = drained(dsn)
    return {
        "jobs": args.jobs,
        "succeeded": done,
        "exit_code": code,
        "enqueue_per_s": round(args.jobs / enqueue_s),
        "wall_s": round(wall, 3),
        "drain_per_s_wall": round(args.jobs / wall),
        "drain_per_s_span": round(args.jobs / span) if span else None,
    }


def _latency_worker(dsn: str, concurrency: int) -> None:
    app = make_app(dsn)
    sys.exit(app.run_worker("latency", concurrency=concurrency, rescue=False))


def latency(dsn: str, args: argparse.Namespace) -> dict[str, Any]:
    app = make_app(dsn)
    task = app.tasks["bench.anoop" if args.use_async else "bench.noop"]
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=_latency_worker, args=(dsn, args.concurrency))
    proc.start()
    with psycopg.connect(dsn, autocommit=True) as conn:
        deadline = time.monotonic() + 30
        while not conn.execute("SELECT count(*) FROM pgqueue.live_workers").fetchone()[0]:  # type: ignore[index]
            if time.monotonic() > deadline:
                raise RuntimeError("the latency worker did not start")
            time.sleep(0.05)
        time.sleep(0.5)  # idle now
        ids = []
        for _ in range(args.latency_jobs):
            ids.append(task.options(queue="latency").enqueue().id)
            time.sleep(args.spacing)
        while True:
            left = conn.execute(
                "SELECT count(*) FROM pgqueue.jobs WHERE id = ANY(%s) AND status <> 'succeeded'",
                (ids,),
            ).fetchone()[0]  # type: ignore[index]
            if not left:
                break
            time.sleep(0.05)
        rows = conn.execute(
            "SELECT extract(epoch FROM started_at - created_at)::float8 * 1000"
            " FROM pgqueue.jobs WHERE id = ANY(%s) ORDER BY id",
            (ids,),
        ).fetchall()
    proc.terminate()
    proc.join(30)
    app.close()
    ms = sorted(r[0] for r in rows)
    q = statistics.quantiles(ms, n=100)
    return {
        "jobs": len(ms),
        "spacing_ms": args.spacing * 1000,
        "p50_ms": round(q[49], 2),
        "p90_ms": round(q[89], 2),
        "p99_ms": round(q[98], 2),
        "max_ms": round(ms[-1], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.drain", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--dsn", help="server (maintenance DB) to create the database on")
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--async", dest="use_async", action="store_true", help="async no-op tasks")
    parser.add_argument("--latency-jobs", type=int, default=300)
    parser.add_argument("--spacing", type=float, default=0.010)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.dsn:
        os.environ["PGQUEUE_BENCH_DSN"] = args.dsn
    print(f"server: {server_dsn()}", file=sys.stderr)
    with fresh_database("pgqueue_bench_drain") as dsn:
        report: dict[str, Any] = {
            "kind": "async" if args.use_async else "sync",
            "processes": args.processes,
            "concurrency": args.concurrency,
            "cpus": os.cpu_count(),
            "drain": drain(dsn, args),
        }
        if not args.skip_latency:
            report["latency"] = latency(dsn, args)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        d = report["drain"]
        print(
            f"{report['kind']} no-op jobs, {args.processes} process(es) x {args.concurrency} slots,"
            f" {report['cpus']} CPUs"
        )
        per = f"enqueue_many, {ENQUEUE_CHUNK} per statement"
        print(f"  enqueue : {d['enqueue_per_s']:>8} jobs/s ({per})")
        print(
            f"  drain   : {d['drain_per_s_wall']:>8} jobs/s wall ({d['wall_s']} s for {d['jobs']},"
            f" startup included); {d['drain_per_s_span']} jobs/s first claim to last completion"
        )
        if "latency" in report:
            lat = report["latency"]
            print(
                f"  latency : enqueue->start p50 {lat['p50_ms']} ms, p90 {lat['p90_ms']} ms,"
                f" p99 {lat['p99_ms']} ms, max {lat['max_ms']} ms ({lat['jobs']} jobs,"
                f" {lat['spacing_ms']:.0f} ms apart, idle worker)"
            )
    return 0 if report["drain"]["succeeded"] == args.jobs else 1


if __name__ == "__main__":
    sys.exit(main())
