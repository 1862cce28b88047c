"""A database that turns read-only under a draining worker (a failover, a demoted primary).

The worker must stop claiming, keep the outcomes it holds, write them once the
server takes writes again, and finish cleanly: every job runs to success
exactly once, and no child process of a supervisor crashes meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from test_worker_app import executions, prepare_tables, wait_until, worker_process

import pgqueue
from pgqueue._embedded import LocalCluster
from pgqueue.worker import Worker, WorkerConfig

JOBS = 300


def _set_read_only(dsn: str, on: bool) -> None:
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute("SET default_transaction_read_only = off")  # this session writes
        if on:
            admin.execute("ALTER SYSTEM SET default_transaction_read_only = on")
        else:
            admin.execute("ALTER SYSTEM RESET default_transaction_read_only")
        admin.execute("SELECT pg_reload_conf()")


@pytest.fixture
def dsn(cluster: LocalCluster) -> Iterator[str]:
    dsn = cluster.dsn
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE pgqueue.jobs, pgqueue.workers")
    prepare_tables(dsn)
    try:
        yield dsn
    finally:
        _set_read_only(dsn, False)  # never leave the shared cluster read-only


def _rows(dsn: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(sql).fetchall()


@pytest.mark.parametrize("processes", [1, 2])
def test_a_drain_survives_the_database_turning_read_only(dsn: str, processes: int) -> None:
    with pgqueue.App(dsn) as app:
        sleep = app.task_ref("t.sleep")
        app.enqueue_many([sleep.job(k, 0.01) for k in range(JOBS)])
    args = ["--burst", "--concurrency", "4", "--processes", str(processes)]
    with worker_process(dsn, *args) as worker:
        wait_until(lambda: executions(dsn) >= 40)
        _set_read_only(dsn, True)
        time.sleep(2.5)
        _set_read_only(dsn, False)
        assert worker.wait(60) == 0, worker.output()
        log = worker.output()
    assert "read-only" in log  # it did meet the read-only server
    assert "Traceback" not in log and "event=fenced" not in log
    assert "event=child_crashed" not in log
    assert _rows(dsn, "SELECT status, count(*) FROM pgqueue.jobs GROUP BY 1") == [
        ("succeeded", JOBS)
    ]
    # The effect of each job (its row in executions) happened exactly once.
    runs = _rows(dsn, "SELECT count(DISTINCT key), count(*) FROM public.executions")
    assert runs == [(JOBS, JOBS)], log


def test_supervised_children_wait_for_a_database_that_is_down_at_their_start(
    cluster: LocalCluster,
) -> None:
    dsn = cluster.dsn
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE pgqueue.jobs, pgqueue.workers")
    prepare_tables(dsn)
    with pgqueue.App(dsn) as app:
        record = app.task_ref("t.record")
        app.enqueue_many([record.job(k) for k in range(20)])
    cluster.stop("fast")
    try:
        with worker_process(dsn, "--burst", "--processes", "2") as worker:
            time.sleep(2.0)  # the children start meanwhile, and find no server
            cluster.start()
            assert worker.wait(60) == 0, worker.output()
            log = worker.output()
    finally:
        if not cluster.is_running():
            cluster.start()
    assert "event=child_crashed" not in log and "Traceback" not in log
    assert executions(dsn) == 20


def test_an_outage_longer_than_the_lease_does_not_rerun_the_jobs_it_held(
    dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = pgqueue.App(dsn, lease=2.0)  # the outage below outlasts the lease

    @app.task(name="slow")
    def slow(key: int) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO public.executions (key, pid) VALUES (%s, 0)", (key,))
        time.sleep(5.0)

    app.enqueue_many([slow.job(k) for k in range(2)])
    config = WorkerConfig(until_empty=True, rescue_interval=0.1, poll_interval=0.1,
                          install_signal_handlers=False)  # fmt: skip
    worker = Worker(app.database, app.registry, config)
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(worker.run()), daemon=True)
    caplog.set_level(logging.INFO, logger="pgqueue")
    thread.start()
    wait_until(lambda: executions(dsn) == 2)
    _set_read_only(dsn, True)
    time.sleep(3.0)
    _set_read_only(dsn, False)
    thread.join(30)
    app.close()
    assert codes == [0]
    assert "event=rescue " not in caplog.text
    assert _rows(dsn, "SELECT status, attempts FROM pgqueue.jobs") == [("succeeded", 1)] * 2
    assert executions(dsn) == 2
