"""Durable workflows: the cost of checkpointing, and how fast an event resumes a workflow.

    python -m benchmarks.workflows [--workflows 2000 --rounds 3 --concurrency 50] [--quick]

1. Creates a fresh database on the server (``--dsn``, else ``$PGQUEUE_BENCH_DSN``,
   else ``postgresql://postgres@127.0.0.1:5432/postgres``) and drops it at the end.
2. Throughput, in alternating rounds on one worker process (burst mode): N
   workflows of three no-op steps each, against 3N independent no-op jobs. Rates
   over the jobs' own span (first claim to last completion, server clock);
   ``ratio`` = workflows/s divided by (independent jobs/s / 3): 1.0 would mean
   durability costs nothing; the aim is at least 1/3.
3. Resume latency: one idle worker process; workflows that wait for an event
   are started one at a time, and once each is suspended, an event is sent.
   Reports ``resumed`` (event ``sent_at`` to the claim of the resumed attempt,
   both server clock) and ``finished`` (to the workflow's completion),
   p50/p99/max.
4. With ``--dbos-python PATH`` (the interpreter of a virtualenv where ``dbos`` is
   installed; it is no dependency of pgqueue), DBOS Transact runs the same 3-step
   workflow on a DBOS queue, one process, in a database of its own
   (``benchmarks/workflows_dbos.py``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import subprocess
import sys
import time
from typing import Any

import psycopg

import pgqueue
from benchmarks._db import fresh_database, server_dsn


def make_app(dsn: str, connections: int = 20) -> pgqueue.App:
    app = pgqueue.App(dsn, max_connections=connections)

    @app.step(name="bench.s1")
    def s1(i: int) -> int:
        return i

    @app.step(name="bench.s2")
    def s2(i: int) -> int:
        return i

    @app.step(name="bench.s3")
    def s3(i: int) -> int:
        return i

    @app.workflow(name="bench.wf3", queue="bench")
    def wf3(i: int) -> int:
        return s1(i) + s2(i) + s3(i)

    @app.step(name="bench.a1")
    async def a1(i: int) -> int:
        return i

    @app.workflow(name="bench.awf3", queue="bench")
    async def awf3(i: int) -> int:
        return await a1(i) + await a1(i) + await a1(i)

    @app.task(name="bench.noop", queue="bench")
    def noop(i: int) -> None:
        return None

    @app.workflow(name="bench.waiter", queue="latency")
    def waiter() -> Any:
        return pgqueue.wait_for_event("go", timeout=3600)

    return app


def span(dsn: str, task: str) -> tuple[int, float]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE status = 'succeeded'),"
            " extract(epoch FROM max(finished_at) - min(started_at))::float8"
            " FROM pgqueue.jobs WHERE task = %s",
            (task,),
        ).fetchone()
        conn.execute("DELETE FROM pgqueue.jobs")  # the next round starts empty
        conn.execute("VACUUM ANALYZE pgqueue.jobs")
        conn.execute("VACUUM ANALYZE pgqueue.workflow_steps")
    assert row is not None
    return int(row[0]), float(row[1] or 0.0)


def one_round(dsn: str, args: argparse.Namespace, what: str) -> float:
    app = make_app(dsn, args.connections)
    n = args.workflows if what == "workflows" else 3 * args.workflows
    name = "bench.awf3" if args.use_async else "bench.wf3"
    task = app.tasks[name if what == "workflows" else "bench.noop"]
    app.enqueue_many([task.job(i) for i in range(n)])
    app.close()
    app.run_worker("bench", concurrency=args.concurrency, until_empty=True, rescue=False,
                   scheduler=False, pruner=False)  # fmt: skip
    done, seconds = span(dsn, task.name)
    if done != n:
        raise RuntimeError(f"{what}: {done} of {n} succeeded")
    return n / seconds


def throughput(dsn: str, args: argparse.Namespace) -> dict[str, Any]:
    wf_rates, job_rates = [], []
    for _ in range(args.rounds):
        wf_rates.append(one_round(dsn, args, "workflows"))
        job_rates.append(one_round(dsn, args, "jobs"))
    wf, jobs = statistics.median(wf_rates), statistics.median(job_rates)
    return {
        "workflows": args.workflows,
        "rounds": args.rounds,
        "concurrency": args.concurrency,
        "async": args.use_async,
        "workflows_per_s": round(wf),
        "workflows_per_s_all": [round(r) for r in wf_rates],
        "independent_jobs_per_s": round(jobs),
        "independent_jobs_per_s_all": [round(r) for r in job_rates],
        "ratio": round(wf / (jobs / 3), 3),
    }


def _latency_worker(dsn: str) -> None:
    app = make_app(dsn)
    sys.exit(app.run_worker("latency", concurrency=10, rescue=False))


def _quantiles(ms: list[float]) -> dict[str, float]:
    ms = sorted(ms)
    q = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else [ms[0]] * 99
    return {"p50_ms": round(q[49], 2), "p99_ms": round(q[98], 2), "max_ms": round(ms[-1], 2)}


def latency(dsn: str, args: argparse.Namespace) -> dict[str, Any]:
    app = make_app(dsn)
    waiter = app.tasks["bench.waiter"]
    assert isinstance(waiter, pgqueue.Workflow)
    proc = multiprocessing.get_context("spawn").Process(target=_latency_worker, args=(dsn,))
    proc.start()
    ids = []
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for _ in range(args.events):
                handle = waiter.start()
                deadline = time.monotonic() + 30
                while not conn.execute(
                    "SELECT 1 FROM pgqueue.jobs AS j JOIN pgqueue.workflow_steps AS s"
                    " ON s.workflow_id = j.id AND s.kind = 'event'"
                    " WHERE j.id = %s AND j.status = 'queued'",
                    (handle.id,),
                ).fetchone():
                    if time.monotonic() > deadline:
                        raise RuntimeError("the waiting workflow did not suspend")
                    time.sleep(0.005)
                time.sleep(args.spacing)  # the worker is idle again
                handle.send_event("go", True)
                handle.wait(timeout=30)
                ids.append(handle.id)
            rows = conn.execute(
                "SELECT extract(epoch FROM j.started_at - e.sent_at)::float8 * 1000,"
                "       extract(epoch FROM j.finished_at - e.sent_at)::float8 * 1000"
                " FROM pgqueue.jobs AS j JOIN pgqueue.workflow_events AS e"
                " ON e.workflow_id = j.id WHERE j.id = ANY(%s)",
                (ids,),
            ).fetchall()
    finally:
        proc.terminate()
        proc.join(30)
        app.close()
    return {
        "events": len(rows),
        "resumed": _quantiles([r[0] for r in rows]),
        "finished": _quantiles([r[1] for r in rows]),
    }


def dbos_peer(args: argparse.Namespace) -> dict[str, Any]:
    with fresh_database("pgqueue_bench_dbos", args.dsn or server_dsn()) as dsn:
        cmd = [args.dbos_python, "-m", "benchmarks.workflows_dbos", dsn,
               str(args.workflows), str(args.concurrency)]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.workflows", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--dsn", help="server (maintenance DB) to create the database on")
    parser.add_argument("--workflows", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--connections", type=int, default=20, help="the app's pool size")
    parser.add_argument("--async", dest="use_async", action="store_true",
                        help="async workflows and steps")
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--spacing", type=float, default=0.02)
    parser.add_argument("--dbos-python", help="a Python with dbos installed: run it as the peer")
    parser.add_argument("--quick", action="store_true", help="a short run (< 30 s)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.workflows, args.rounds, args.events = 300, 1, 30
    with fresh_database("pgqueue_bench_wf", args.dsn or server_dsn()) as dsn:
        report = {"throughput": throughput(dsn, args), "resume_latency": latency(dsn, args)}
    if args.dbos_python:
        report["dbos"] = dbos_peer(args)
    print(json.dumps(report, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
