"""The workloads every system runs the same way: enqueue, drain, latency.

Throughput and latency are read back from each system's own tables, by the
server's clock. A drain's rate is the jobs recorded finished over the span
from the first job's start to the last one's finish (the workers' warm-up
counts, process start-up does not). Latency: enqueue transaction to claim
transaction.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg

from benchmarks.suite import db
from benchmarks.suite.procs import WorkerProcess, check_exit, stop_all, wait_all
from benchmarks.suite.profiles import Profile
from benchmarks.suite.stats import Figure, latency_summary, summarize, unavailable
from benchmarks.suite.systems import Setup, System

STARTUP_LIMIT = 30.0  # seconds a worker may take to finish its first job
WARMUP_TIMEOUT = 30.0


class RunFailed(Exception):
    pass


def timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


# -- enqueue ---------------------------------------------------------------------


def enqueue_single(system: System, dsn: str, n: int, runs: int) -> Figure:
    """``n`` single enqueue calls, each its own transaction, on an open connection."""
    rates = []
    for _ in range(runs):
        system.reset(dsn)
        with system.producer(dsn) as enqueue_one:
            seconds = timed(lambda: [enqueue_one() for _ in range(n)])
        rates.append(n / seconds)
    return summarize(rates, "jobs/s") | {"jobs": n}


def enqueue_bulk(system: System, dsn: str, n: int, runs: int) -> Figure:
    """``n`` jobs in one call of the system's batch API."""
    rates = []
    for _ in range(runs):
        system.reset(dsn)
        rates.append(n / timed(lambda: system.enqueue_bulk(dsn, n, chunk=n)))
    return summarize(rates, "jobs/s") | {"jobs": n}


# -- drain -----------------------------------------------------------------------


def drain_once(system: System, dsn: str, setup: Setup, jobs: int, window: float) -> dict[str, Any]:
    """Top the queue up to ``jobs``, run the worker(s) until empty or ``window``."""
    system.clear_finished(dsn)
    missing = jobs - system.pending(dsn)
    if missing > 0:
        system.enqueue_bulk(dsn, missing)
    db.vacuum(dsn, ".".join(system.table))
    since = db.server_now(dsn)
    workers = system.launch(dsn, setup, burst=True)
    try:
        # The window opens with the first finished job (start-up is not the system's
        # throughput) and closes after `window` seconds or when the queue is empty.
        with psycopg.connect(dsn, autocommit=True) as poll:
            started = wait_all(workers, time.monotonic() + STARTUP_LIMIT,
                               done=lambda: system.finished(poll, since) > 0)  # fmt: skip
        drained = started and not any(w.running() for w in workers)
        if started and not drained:
            drained = wait_all(workers, time.monotonic() + window)
        # What a worker records while it shuts down (buffers flushed on SIGTERM) is
        # left out: the rate covers the window only.
        until = db.server_now(dsn)
    finally:
        stop_all(workers)
    killed = [w.kind for w in workers if w.killed]
    failure = check_exit(workers)
    reports = [w.result() for w in workers]
    for w in workers:
        w.close()
    if failure:
        raise RunFailed(failure)
    count, seconds = system.span(dsn, since, until)
    if not count or not seconds:
        raise RunFailed("no job finished")
    out = {"jobs": count, "seconds": seconds, "rate": count / seconds, "drained": drained}
    if killed:  # did not stop within the grace period after SIGTERM
        out["killed_after_grace"] = len(killed)
    if any(reports):
        out["workers"] = reports
    return out


def drain(system: System, dsn: str, setup: Setup, jobs: int, window: float, runs: int) -> Figure:
    results, failures = [], []
    for _ in range(runs):
        try:
            results.append(drain_once(system, dsn, setup, jobs, window))
        except RunFailed as exc:
            failures.append(str(exc)[:500])
    if not results:
        return unavailable(f"failed: {failures[0]}")
    fig = summarize([r["rate"] for r in results], "jobs/s")
    fig["detail"] = results
    if failures:
        fig["failed_runs"] = failures
    fig["setup"] = {
        "label": setup.label,
        "processes": setup.processes,
        "note": setup.note,
        "source": setup.source,
    }
    return fig


# -- latency ---------------------------------------------------------------------


def start_idle(system: System, dsn: str, setup: Setup) -> list[WorkerProcess]:
    """Start the worker(s) and wait until one job went through: listening, warm, idle."""
    workers = system.launch(dsn, setup, burst=False)
    since = db.server_now(dsn)
    with system.producer(dsn) as enqueue_one:
        enqueue_one()
    deadline = time.monotonic() + WARMUP_TIMEOUT
    while system.finished(dsn, since) < 1:
        if time.monotonic() > deadline or not all(w.running() for w in workers):
            stop_all(workers)
            raise RunFailed(check_exit(workers) or "the worker did not start")
        time.sleep(0.05)
    time.sleep(0.5)  # idle now
    return workers


def latency_batch(system: System, dsn: str, n: int, spacing: float) -> list[float]:
    """Enqueue ``n`` jobs ``spacing`` apart to an idle worker; their waits in ms."""
    since = db.server_now(dsn)
    with system.producer(dsn) as enqueue_one:
        next_at = time.monotonic()
        for _ in range(n):
            enqueue_one()
            next_at += spacing
            time.sleep(max(0.0, next_at - time.monotonic()))
    deadline = time.monotonic() + 30
    while len(ms := system.latencies_ms(dsn, since)) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    if len(ms) < n:
        raise RunFailed(f"only {len(ms)} of {n} jobs started within 30 s")
    return ms


def latency(system: System, dsn: str, setup: Setup, n: int, spacing: float, runs: int) -> Figure:
    """enqueue-to-start p50/p95/p99 (each the median over runs, with min and max).

    One worker serves every run; it is idle (warmed up, queue empty) before each.
    """
    per_run = []
    system.reset(dsn)
    try:
        workers = start_idle(system, dsn, setup)
        try:
            for _ in range(runs):
                per_run.append(latency_summary(latency_batch(system, dsn, n, spacing)))
                time.sleep(0.3)
        finally:
            stop_all(workers)
            for w in workers:
                w.close()
    except RunFailed as exc:
        if not per_run:
            return unavailable(f"failed: {exc}")
    return {q: summarize([r[q] for r in per_run], "ms") for q in ("p50", "p95", "p99", "max")} | {
        "jobs": n,
        "spacing_ms": spacing * 1000,
        "setup": setup.key,
        "note": setup.note,
    }


def peer_profile_sizes(system: System, profile: Profile) -> dict[str, int]:
    if system.name == "pgqueue":
        return {
            "single": profile.enqueue_single,
            "bulk": profile.enqueue_bulk,
            "latency": profile.latency_jobs,
        }
    return {
        "single": profile.peer_enqueue_single,
        "bulk": profile.peer_enqueue_bulk,
        "latency": profile.peer_latency_jobs,
    }
