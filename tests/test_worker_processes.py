"""Several worker processes: exactly-once claims, the supervisor's restarts and recycling."""

from __future__ import annotations

import os
import signal

import psycopg
import pytest
from test_worker_app import executions, prepare_tables, scalar, wait_until, worker_process

import pgqueue


@pytest.fixture
def dsn(clean_db: str) -> str:
    prepare_tables(clean_db)
    return clean_db


def worker_pids(dsn: str) -> set[int]:
    with psycopg.connect(dsn) as conn:
        return {r[0] for r in conn.execute("SELECT pid FROM pgqueue.live_workers")}


def test_four_processes_run_each_of_5000_jobs_exactly_once(dsn: str) -> None:
    app = pgqueue.App(dsn)
    record = app.task_ref("t.record")
    app.enqueue_many([record.job(i) for i in range(5000)])
    args = ("--processes", "4", "--concurrency", "8", "--burst", "--log-level", "warning")
    with worker_process(dsn, *args) as worker:
        assert worker.wait(120) == 0, worker.output()
    with psycopg.connect(dsn) as conn:
        counts = conn.execute(
            "SELECT count(DISTINCT key), count(*), count(DISTINCT pid) FROM public.executions"
        ).fetchone()
        jobs = conn.execute(
            "SELECT status, attempts, count(*) FROM pgqueue.jobs GROUP BY 1, 2"
        ).fetchall()
    assert counts is not None
    distinct_keys, runs, pids = counts
    assert (distinct_keys, runs) == (5000, 5000)
    assert pids >= 2  # the processes shared the work
    assert jobs == [("succeeded", 1, 5000)]
    app.close()


def test_supervisor_restarts_a_crashed_child_and_stops_cleanly(dsn: str) -> None:
    with worker_process(dsn, "--processes", "2", "--poll-interval", "0.2") as supervisor:
        pids = wait_until(lambda: len(worker_pids(dsn)) == 2 and worker_pids(dsn))
        victim = min(pids)
        os.kill(victim, signal.SIGKILL)
        # A replacement registers (the victim's row stays until pruned).
        wait_until(lambda: len(worker_pids(dsn) - pids) == 1)
        app = pgqueue.App(dsn)
        job = app.task_ref("t.record").enqueue(1)
        assert job.wait(timeout=10) == 1  # the pool of workers still works
        app.close()
        supervisor.signal(signal.SIGTERM)
        assert supervisor.wait() == 0, supervisor.output()
        log = supervisor.output()
    assert "event=child_crashed" in log and f"exit_code=-{signal.SIGKILL.value}" in log
    live = worker_pids(dsn)
    assert live <= {victim}  # the others deregistered on their way out


def test_children_are_recycled_after_max_tasks(dsn: str) -> None:
    app = pgqueue.App(dsn)
    record = app.task_ref("t.record")
    app.enqueue_many([record.job(i) for i in range(12)])
    args = ("--max-tasks-per-child", "5", "--concurrency", "2", "--burst")
    with worker_process(dsn, *args) as worker:
        assert worker.wait(60) == 0, worker.output()
        assert worker.output().count("event=child_recycled") >= 2
    assert executions(dsn) == 12
    assert scalar(dsn, "SELECT count(DISTINCT pid) FROM public.executions") >= 3
    app.close()
