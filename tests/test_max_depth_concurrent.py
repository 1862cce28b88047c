"""max_depth holds when producers enqueue in concurrent open transactions."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

import pgqueue
from pgqueue._keys import QUEUE_DEPTH_LOCK


def waiting(dsn: str, queue: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pgqueue.jobs WHERE queue = %s AND status = 'queued'", (queue,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def blocked_on_lock(dsn: str, pid: int) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", (pid,)
        ).fetchone()
    return bool(row and row[0])


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def producer(dsn: str, queue: str, n: int, out: dict[str, Any], started: threading.Event) -> None:
    """Enqueue ``n`` jobs one at a time in one transaction; record QueueFull."""
    with pgqueue.App(dsn) as app, psycopg.connect(dsn) as conn:
        out["pid"] = conn.info.backend_pid
        started.set()
        task = app.task_ref("t.p", queue=queue)
        out["enqueued"] = 0
        try:
            for i in range(n):
                task.options(connection=conn).enqueue(i)
                out["enqueued"] += 1
        except pgqueue.QueueFull:
            out["full"] = True
        conn.commit()


@pytest.mark.parametrize("path", ["single", "enqueue_many", "copy"])
def test_two_producers_in_open_transactions_cannot_overflow(clean_db: str, path: str) -> None:
    first_n = 64 if path == "copy" else 3  # COPY from 64 jobs up
    with pgqueue.App(clean_db) as app:
        app.set_queue("capped", max_depth=first_n + 1)
        task = app.task_ref("t.p", queue="capped")
        with psycopg.connect(clean_db) as first:
            # The first producer takes all places but one, and keeps its transaction open.
            if path == "single":
                for i in range(first_n):
                    task.options(connection=first).enqueue(i)
            else:
                app.enqueue_many([task.job(i) for i in range(first_n)], connection=first)

            out: dict[str, Any] = {}
            started = threading.Event()
            second = threading.Thread(target=producer, args=(clean_db, "capped", 2, out, started))
            second.start()
            started.wait(10)
            # The second producer waits for the first one's commit, not for a count
            # that cannot see the first one's jobs yet.
            wait_until(lambda: blocked_on_lock(clean_db, out["pid"]))
            first.commit()
        second.join(10)

    assert not second.is_alive()
    assert out == {"pid": out["pid"], "enqueued": 1, "full": True}
    assert waiting(clean_db, "capped") == first_n + 1


def test_unlimited_queues_take_no_lock(clean_db: str) -> None:
    with pgqueue.App(clean_db) as app, psycopg.connect(clean_db) as conn:
        task = app.task_ref("t.p", queue="free")
        task.options(connection=conn).enqueue(1)
        app.enqueue_many([task.job(i) for i in range(3)], connection=conn)
        locks = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s"
            " AND pid = pg_backend_pid()",
            (QUEUE_DEPTH_LOCK,),
        ).fetchone()
        conn.rollback()
    assert locks == (0,)


def test_lock_key_matches_the_schema_function(clean_db: str) -> None:
    with psycopg.connect(clean_db) as conn:
        row = conn.execute(
            "SELECT pg_get_functiondef('pgqueue.lock_depth(text[])'::regprocedure)"
        ).fetchone()
    assert row is not None and f"pg_advisory_xact_lock({QUEUE_DEPTH_LOCK}," in row[0]
