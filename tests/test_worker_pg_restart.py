"""A worker survives PostgreSQL restarting under it: reconnect, re-LISTEN, fetch.

The cluster runs with fsync and synchronous_commit off (tests), so only clean
stops are used here: a crash (``immediate``) could lose commits, jobs' included.
"""

from __future__ import annotations

import signal
import time

import psycopg
from test_worker_app import executions, prepare_tables, wait_until, worker_process

import pgqueue
from pgqueue._embedded import LocalCluster


def _truncate(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE pgqueue.jobs, pgqueue.workers")


def _enqueue(dsn: str, keys: range) -> None:
    with pgqueue.App(dsn) as app:  # a fresh pool: the old connections died with the server
        record = app.task_ref("t.record")
        app.enqueue_many([record.job(k) for k in keys])


def test_worker_drains_after_the_database_restarts(cluster: LocalCluster) -> None:
    dsn = cluster.dsn
    _truncate(dsn)
    prepare_tables(dsn)
    # A long poll interval: after the restart, jobs must be found through the
    # reconnected LISTEN (or the fetch that follows it), not by polling.
    with worker_process(dsn, "--concurrency", "4", "--poll-interval", "30") as worker:
        _enqueue(dsn, range(0, 20))
        wait_until(lambda: executions(dsn) == 20)

        cluster.restart("fast")
        _enqueue(dsn, range(20, 40))
        wait_until(lambda: executions(dsn) == 40, timeout=30)

        cluster.stop("fast")  # down for a while: the worker retries with backoff
        time.sleep(1.0)
        cluster.start()
        _enqueue(dsn, range(40, 60))
        wait_until(lambda: executions(dsn) == 60, timeout=30)

        assert worker.alive()
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0, worker.output()
        log = worker.output()
    assert "event=listen_lost" in log and "event=listen_restored" in log
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT status, count(*) FROM pgqueue.jobs GROUP BY 1").fetchall()
    assert rows == [("succeeded", 60)], log
