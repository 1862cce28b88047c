"""A claim survives a server crash: the started attempt stays counted.

The test cluster runs with synchronous_commit off; the sessions here ask for
``on`` (the server default), and the WAL writer is slowed down so that a
commit that does not wait for its own WAL flush is still in memory when the
server crashes (``pg_ctl stop -m immediate``).
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from test_worker_app import executions, prepare_tables, scalar, wait_until, worker_process

import pgqueue
from pgqueue._embedded import LocalCluster
from pgqueue._sql import query

DURABLE = "options=-c%20synchronous_commit%3Don"


def durable(dsn: str) -> str:
    return f"{dsn}?{DURABLE}"


@pytest.fixture
def server(cluster: LocalCluster) -> Iterator[LocalCluster]:
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE pgqueue.jobs, pgqueue.workers, pgqueue.queues")
        conn.execute("ALTER SYSTEM SET wal_writer_delay = '10s'")
        conn.execute("SELECT pg_reload_conf()")
    try:
        yield cluster
    finally:
        cluster.start()  # a failed test may leave it down
        with psycopg.connect(cluster.dsn, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM RESET wal_writer_delay")
            conn.execute("SELECT pg_reload_conf()")


def claim(conn: psycopg.Connection[tuple[object, ...]], token: str) -> list[int]:
    params = {"queues": ["default"], "limit": 10, "lease": 30.0, "token": token,
              "worker_id": "w1"}  # fmt: skip
    return sorted(int(str(r[0])) for r in conn.execute(query("claim"), params).fetchall())


def test_a_claim_survives_a_server_crash(server: LocalCluster) -> None:
    dsn = durable(server.dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO pgqueue.jobs (task, max_attempts) SELECT 't.once', 1"
            " FROM generate_series(1, 5)"
        )
        token = str(uuid.uuid4())
        claimed = claim(conn, token)
    assert len(claimed) == 5

    server.restart("immediate")  # a crash: recovery replays only what reached the WAL

    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT id, status, attempts, lease_token::text FROM pgqueue.jobs ORDER BY id"
        ).fetchall()
        assert rows == [(i, "running", 1, token) for i in claimed]
        # The worker that ran them is gone too: once the leases expire the rescuer
        # counts those attempts, and with max_attempts = 1 nothing runs a second time.
        conn.execute("UPDATE pgqueue.jobs SET leased_until = now() - interval '1 second'")
        conn.execute(query("rescue"), {"limit": 100, "after": None}).fetchall()
        statuses = conn.execute("SELECT DISTINCT status FROM pgqueue.jobs").fetchall()
    assert statuses == [("dead",)]



def test_jobs_running_through_a_server_crash_run_once(server: LocalCluster) -> None:
    """A real worker: the crash hits while its tasks run; they finish, their outcomes
    are accepted after the restart (the claims, lease tokens included, survived),
    and no job runs a second time."""
    dsn = durable(server.dsn)
    prepare_tables(dsn)
    with pgqueue.App(dsn) as app:
        task = app.task_ref("t.sleep").options(max_attempts=1)
        app.enqueue_many([task.job(k, 1.5) for k in range(6)])
    with worker_process(dsn, "--concurrency", "6") as worker:
        wait_until(lambda: executions(dsn) == 6)
        server.restart("immediate")
        wait_until(lambda: scalar(dsn, FINISHED) == 6, timeout=40)
        worker.signal(signal.SIGTERM)
        worker.wait()
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT status, attempts, count(*) FROM pgqueue.jobs GROUP BY 1, 2")
        assert rows.fetchall() == [("succeeded", 1, 6)], worker.output()
    assert executions(dsn) == 6


FINISHED = "SELECT count(*) FROM pgqueue.jobs WHERE status IN ('succeeded', 'dead', 'cancelled')"
