"""Queue limits hold across competing worker processes (sampled from the database)."""

from __future__ import annotations

import threading
from datetime import timedelta

import psycopg
import pytest
from test_worker_app import prepare_tables, worker_process

import pgqueue


@pytest.fixture
def dsn(clean_db: str) -> str:
    prepare_tables(clean_db)
    return clean_db


def sample_running(dsn: str, queue: str, stop: threading.Event, seen: list[int]) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        while not stop.is_set():
            row = conn.execute(
                "SELECT count(*) FROM pgqueue.jobs WHERE queue = %s AND status = 'running'",
                (queue,),
            ).fetchone()
            assert row is not None
            seen.append(int(row[0]))
            stop.wait(0.005)


def test_max_running_holds_with_four_workers(dsn: str) -> None:
    app = pgqueue.App(dsn)
    app.set_queue("lim", max_running=3)
    sleeper = app.task_ref("t.sleep", queue="lim")
    app.enqueue_many([sleeper.job(i, 0.05) for i in range(60)])
    seen: list[int] = []
    stop = threading.Event()
    sampler = threading.Thread(target=sample_running, args=(dsn, "lim", stop, seen))
    sampler.start()
    args = ("--processes", "4", "--concurrency", "8", "--queues", "lim", "--burst",
            "--log-level", "warning")  # fmt: skip
    try:
        with worker_process(dsn, *args) as worker:
            assert worker.wait(120) == 0, worker.output()
    finally:
        stop.set()
        sampler.join()
    assert len(app.list_jobs(queue="lim", status="succeeded", limit=100)) == 60
    assert max(seen) == 3  # the limit was reached, and never passed
    app.close()


def test_rate_limit_holds_with_four_workers(dsn: str) -> None:
    app = pgqueue.App(dsn)
    app.set_queue("rated", rate_limit=10, rate_period=0.5)
    record = app.task_ref("t.record", queue="rated")
    app.enqueue_many([record.job(i) for i in range(35)])
    args = ("--processes", "4", "--concurrency", "8", "--queues", "rated", "--burst",
            "--poll-interval", "0.05", "--log-level", "warning")  # fmt: skip
    with worker_process(dsn, *args) as worker:
        assert worker.wait(120) == 0, worker.output()
    with psycopg.connect(dsn) as conn:
        starts = [r[0] for r in conn.execute(
            "SELECT started_at FROM pgqueue.jobs WHERE queue = 'rated' ORDER BY started_at"
        )]  # fmt: skip
    assert len(starts) == 35
    # Replay the windows: each opens at the first start after the previous one expired.
    period = timedelta(seconds=0.5)
    windows: list[int] = []
    opened = None
    for at in starts:
        if opened is None or at >= opened + period:
            opened = at
            windows.append(0)
        windows[-1] += 1
    assert max(windows) == 10 and len(windows) >= 4
    app.close()
