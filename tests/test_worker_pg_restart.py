"""A worker survives PostgreSQL restarting under it: reconnect, re-LISTEN, fetch.

The cluster runs with fsync and synchronous_commit off (tests), so only clean
stops are used here: a crash (``immediate``) could lose commits, jobs' included.
"""

from __future__ import annotations

import logging
import re
import signal
import time

import psycopg
import pytest
from test_worker_app import executions, prepare_tables, wait_until, worker_process

import pgqueue
from pgqueue._embedded import LocalCluster
from pgqueue.maintenance import Pruner, Rescuer
from pgqueue.maintenance._service import RECONNECT_MAX, Service
from pgqueue.worker._heartbeat import Heartbeat


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


def test_loops_do_not_fail_on_a_connection_left_over_from_before_a_restart(
    cluster: LocalCluster, caplog: pytest.LogCaptureFixture
) -> None:
    _truncate(cluster.dsn)
    with pgqueue.App(cluster.dsn) as app:
        beat = Heartbeat(app.database, worker_id="w", queues=["default"], concurrency=1,
                         interval=60, held=list, on_lost=print, on_cancel=print)  # fmt: skip
        pruner, rescuer = Pruner(app.database), Rescuer(app.database)
        passes = [beat.beat, pruner.run_once, rescuer.run_once]
        for run in passes:
            run()  # each opens its connection ...
        cluster.restart("fast")  # ... which the server then drops
        with caplog.at_level(logging.INFO):
            for run in passes:
                run()  # no error: the dead connection is replaced and the pass redone
        assert beat.beats == 2
        loops: list[Service] = [beat, pruner, rescuer]
        for loop in loops:
            loop.stop()
            loop.stop(timeout=1)  # one signature for every service; idempotent
    assert "failed" not in caplog.text


def test_work_resumes_within_a_second_of_the_server_coming_back(cluster: LocalCluster) -> None:
    dsn = cluster.dsn
    _truncate(dsn)
    prepare_tables(dsn)
    with worker_process(dsn, "--concurrency", "2", "--poll-interval", "30") as worker:
        _enqueue(dsn, range(0, 5))
        wait_until(lambda: executions(dsn) == 5)
        cluster.stop("fast")
        time.sleep(4.0)  # long enough for an uncapped backoff to grow past seconds
        cluster.start()
        _enqueue(dsn, range(5, 10))
        wait_until(lambda: executions(dsn) == 10, timeout=30)
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0, worker.output()
        log = worker.output()
    delays = [float(d) for d in re.findall(r"retry_in=([0-9.]+)", log)]
    assert delays, log  # it did wait for the server
    assert max(delays) <= RECONNECT_MAX <= 1.0, log
