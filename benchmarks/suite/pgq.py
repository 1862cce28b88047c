"""pgqueue-only workloads: raw baselines, the ceiling, backlog, mixed.

* Raw baselines: the same rows by COPY (bulk), and the same INSERT with a
  commit each (single), with plain psycopg.
* Ceiling: ``ceiling.py``'s loop, run like a worker (``CeilingLoop``).
* Backlog: the drain rate with a big queue, and with many finished rows,
  against the rate with a small queue (is the claim still O(log n)?).
* Mixed: four queues with priorities. A backlog in the three lower ones (80%
  no-op, 20% sleeping 50 ms) saturates the worker while a critical job
  arrives every 10 ms: how long does the highest priority wait?
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from typing import Any

import psycopg

import pgqueue
from benchmarks.suite import db
from benchmarks.suite.procs import WorkerProcess, check_exit, stop_all, wait_all
from benchmarks.suite.profiles import Profile
from benchmarks.suite.stats import Figure, latency_summary, summarize, unavailable
from benchmarks.suite.systems import Pgqueue, Setup
from benchmarks.suite.tasks import MIXED_PRIORITY, MIXED_QUEUES
from benchmarks.suite.workloads import RunFailed, timed

COLUMNS = "queue, task, args, kwargs, priority, max_attempts"
BACKLOG_QUEUES = MIXED_QUEUES[1:]  # critical jobs only arrive while the others drain


# -- raw baselines ---------------------------------------------------------------


def raw_copy(dsn: str, n: int, runs: int) -> Figure:
    def copy() -> None:
        with (
            psycopg.connect(dsn) as conn,
            conn.cursor() as cur,
            cur.copy(f"COPY pgqueue.jobs ({COLUMNS}) FROM STDIN") as cp,
        ):
            for _ in range(n):
                cp.write_row(("bench", "bench.noop", "[]", "{}", 0, 3))

    rates = []
    for _ in range(runs):
        db.execute(dsn, "TRUNCATE pgqueue.jobs")
        rates.append(n / timed(copy))
    return summarize(rates, "jobs/s") | {"jobs": n}


def raw_insert(dsn: str, n: int, runs: int) -> Figure:
    statement = f"INSERT INTO pgqueue.jobs ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)"
    row = ("bench", "bench.noop", "[]", "{}", 0, 3)
    rates = []
    for _ in range(runs):
        db.execute(dsn, "TRUNCATE pgqueue.jobs")
        with psycopg.connect(dsn, autocommit=True) as conn:
            execute = conn.execute
            rates.append(n / timed(lambda: [execute(statement, row) for _ in range(n)]))  # noqa: B023
    return summarize(rates, "jobs/s") | {"jobs": n}


# The latency floor: what any PostgreSQL queue pays between an enqueue and a start on
# this machine. The producer inserts a row into pgqueue's table and NOTIFYs in one
# autocommit statement (the commit's WAL flush included); a plain LISTEN loop answers
# each notification at once with a SELECT on a second connection, no framework.
FLOOR_CHANNEL = "pgqueue_bench_floor"
FLOOR_ENQUEUE = f"""
WITH i AS (INSERT INTO pgqueue.jobs ({COLUMNS})
           VALUES ('bench_floor', 'bench.noop', '[]', '{{}}', 0, 3) RETURNING 1)
SELECT pg_notify('{FLOOR_CHANNEL}', now()::text) FROM i
"""


def latency_floor(dsn: str, n: int, spacing: float, runs: int) -> dict[str, Any]:
    """enqueue-to-reaction p50/p95/p99 of the LISTEN loop (median over runs)."""
    per_run = [latency_summary(_floor_batch(dsn, n, spacing)) for _ in range(runs)]
    db.execute(dsn, "DELETE FROM pgqueue.jobs WHERE queue = 'bench_floor'")
    return {q: summarize([r[q] for r in per_run], "ms") for q in ("p50", "p95", "p99", "max")} | {
        "jobs": n
    }


def _floor_batch(dsn: str, n: int, spacing: float) -> list[float]:
    waits: list[float] = []
    listening = threading.Event()

    def listen() -> None:
        with (
            psycopg.connect(dsn, autocommit=True) as conn,
            psycopg.connect(dsn, autocommit=True) as answer,
        ):
            conn.execute(f"LISTEN {FLOOR_CHANNEL}")
            listening.set()
            for note in conn.notifies(timeout=30, stop_after=n):
                row = answer.execute(
                    "SELECT extract(epoch FROM now() - %s::timestamptz)::float8 * 1000",
                    (note.payload,),
                ).fetchone()
                assert row is not None
                waits.append(float(row[0]))

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    listening.wait(10)
    with psycopg.connect(dsn, autocommit=True) as conn:
        next_at = time.monotonic()
        for _ in range(n):
            conn.execute(FLOOR_ENQUEUE)
            next_at += spacing
            time.sleep(max(0.0, next_at - time.monotonic()))
    thread.join(30)
    if len(waits) < n:
        raise RunFailed(f"the LISTEN loop saw {len(waits)} of {n} notifications")
    return waits


# -- the ceiling -------------------------------------------------------------------


class CeilingLoop(Pgqueue):
    """pgqueue's tables and spans, but the plain SQL loop instead of a worker."""

    def launch(self, dsn: str, setup: Setup, *, burst: bool) -> list[WorkerProcess]:
        config = {"dsn": dsn, "batch": setup.config["concurrency"], "queues": ["bench"]}
        return [WorkerProcess("ceiling", config) for _ in range(setup.processes)]


# -- backlog -----------------------------------------------------------------------

INSERT_QUEUED = f"""
INSERT INTO pgqueue.jobs ({COLUMNS})
SELECT 'bench', 'bench.noop', '[]', '{{}}', 0, 3 FROM generate_series(1, %(n)s)
"""
INSERT_FINISHED = f"""
INSERT INTO pgqueue.jobs ({COLUMNS}, status, attempts, created_at, started_at, finished_at)
SELECT 'bench', 'bench.noop', '[]', '{{}}', 0, 3, 'succeeded', 1,
       now() - interval '1 hour', now() - interval '1 hour', now() - interval '1 hour'
FROM generate_series(1, %(n)s)
"""


def explain_claim(dsn: str, limit: int) -> dict[str, Any]:
    """EXPLAIN ANALYZE of one claim, rolled back: its time and buffers at this size."""
    from pgqueue._sql import query

    params = {"queues": ["bench"], "limit": limit, "lease": 30.0, "worker_id": "explain",
              "token": str(uuid.uuid4())}  # fmt: skip
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + query("claim"), params
        ).fetchone()
        conn.rollback()
    plan = rows[0][0] if rows else {}
    top = plan.get("Plan", {})
    return {
        "execution_ms": plan.get("Execution Time"),
        "planning_ms": plan.get("Planning Time"),
        "shared_hit": top.get("Shared Hit Blocks"),
        "shared_read": top.get("Shared Read Blocks"),
    }


def backlog_run(dsn: str, setup: Setup, sample: int) -> dict[str, Any]:
    since = db.server_now(dsn)
    worker = WorkerProcess(
        "pgqueue", {**setup.config, "dsn": dsn, "burst": True, "max_tasks": sample}
    )
    try:
        wait_all([worker], time.monotonic() + 120)
    finally:
        stop_all([worker])
    failure = check_exit([worker])
    worker.close()
    if failure:
        raise RunFailed(failure)
    count, seconds = Pgqueue().span(dsn, since)
    if not count or not seconds:
        raise RunFailed("no job finished")
    return {"jobs": count, "seconds": seconds, "rate": count / seconds}


def backlog(dsn: str, profile: Profile) -> dict[str, Any]:
    setup = Setup(
        "tuned",
        1,
        {"concurrency": profile.concurrency_tuned, "queues": ["bench"]},
        f"concurrency={profile.concurrency_tuned}, 1 process",
    )
    cases = {
        "reference": (profile.backlog_reference, 0),
        "queued": (profile.backlog_queued, 0),
        "finished": (profile.backlog_reference, profile.backlog_finished),
    }
    out: dict[str, Any] = {"setup": setup.note, "sample": profile.backlog_sample}
    for case, (queued, finished) in cases.items():
        db.execute(dsn, "TRUNCATE pgqueue.jobs")
        started = time.perf_counter()
        if finished:
            db.execute(dsn, INSERT_FINISHED, {"n": finished})
        db.execute(dsn, INSERT_QUEUED, {"n": queued})
        db.vacuum(dsn, "pgqueue.jobs")
        fill_s = time.perf_counter() - started
        explain = explain_claim(dsn, profile.concurrency_tuned)
        results = []
        try:
            for _ in range(profile.runs):
                if case != "queued":  # keep the small queue at its size
                    left = Pgqueue().pending(dsn)
                    if left < queued:
                        db.execute(dsn, INSERT_QUEUED, {"n": queued - left})
                        db.vacuum(dsn, "pgqueue.jobs")
                results.append(backlog_run(dsn, setup, min(profile.backlog_sample, queued)))
            fig = summarize([r["rate"] for r in results], "jobs/s")
        except RunFailed as exc:
            fig = unavailable(f"failed: {exc}")
        out[case] = fig | {
            "queued": queued,
            "finished_rows": finished,
            "fill_s": fill_s,
            "claim_explain": explain,
            "detail": results,
        }
    db.execute(dsn, "TRUNCATE pgqueue.jobs")
    return out


# -- mixed -------------------------------------------------------------------------


def mixed(dsn: str, profile: Profile) -> dict[str, Any]:
    db.execute(dsn, "TRUNCATE pgqueue.jobs")
    rng = random.Random(6)
    n = profile.mixed_jobs
    with pgqueue.App(dsn) as app:
        specs = []
        for i in range(n):
            queue = BACKLOG_QUEUES[i % len(BACKLOG_QUEUES)]
            name = "bench.sleep" if rng.random() < 0.2 else "bench.noop"
            specs.append(app.task_ref(name, queue=queue, priority=MIXED_PRIORITY[queue]).job())
        rng.shuffle(specs)
        for start in range(0, n, 10_000):
            app.enqueue_many(specs[start : start + 10_000])
        db.vacuum(dsn, "pgqueue.jobs")
        critical = app.task_ref("bench.noop", queue="critical", priority=MIXED_PRIORITY["critical"])
        critical.enqueue()  # open the pool before the clock starts
        since = db.server_now(dsn)
        config = {
            "dsn": dsn,
            "burst": True,
            "queues": list(MIXED_QUEUES),
            "concurrency": profile.mixed_concurrency,
            "processes": 1,
        }
        worker = WorkerProcess("pgqueue", config)
        trickled = 0
        deadline = time.monotonic() + 120
        next_at = time.monotonic()
        try:
            while worker.running() and time.monotonic() < deadline:
                critical.enqueue()
                trickled += 1
                if trickled % 20 == 0 and not _backlog_left(dsn, since):
                    break
                next_at += profile.mixed_trickle_spacing
                time.sleep(max(0.0, next_at - time.monotonic()))
            wait_all([worker], time.monotonic() + 60)
        finally:
            stop_all([worker])
        failure = check_exit([worker])
        worker.close()
    if failure:
        return unavailable(f"failed: {failure}")
    count, seconds = Pgqueue().full_span(dsn, since)
    # Waits count from the worker's first claim (its start-up is not a wait); trickle
    # jobs enqueued while it was starting are left out.
    waits = db.execute(
        dsn,
        "WITH first AS MATERIALIZED (SELECT min(started_at) AS t FROM pgqueue.jobs"
        "               WHERE started_at >= %(since)s)"
        " SELECT queue, created_at >= first.t,"
        "        extract(epoch FROM started_at - greatest(created_at, first.t))::float8 * 1000"
        " FROM pgqueue.jobs, first WHERE status = 'succeeded'"
        "   AND (created_at < %(since)s OR created_at >= first.t)",
        {"since": since},
    )
    trickle_ms = [float(w[2]) for w in waits if w[1]]
    by_queue = {
        q: latency_summary([float(w[2]) for w in waits if w[0] == q and not w[1]])
        for q in BACKLOG_QUEUES
    }
    return {
        "jobs": n,
        "trickle_jobs": trickled,
        "concurrency": profile.mixed_concurrency,
        "throughput": (count / seconds) if count and seconds else None,
        "critical_wait": latency_summary(trickle_ms),
        "backlog_wait_by_queue": by_queue,
    }


def _backlog_left(dsn: str, since: Any) -> int:
    rows = db.execute(
        dsn,
        "SELECT count(*) FROM pgqueue.jobs"
        " WHERE status IN ('queued', 'running') AND created_at < %(since)s",
        {"since": since},
    )
    return int(rows[0][0])
