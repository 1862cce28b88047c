"""Lost leases: the rescuer, and workers killed with SIGKILL in the middle of a job."""

from __future__ import annotations

import signal
import uuid
from typing import Any

import psycopg
import pytest
from test_worker_app import executions, prepare_tables, scalar, wait_until, worker_process

import pgqueue
from pgqueue._sql import query
from pgqueue.maintenance import Rescuer
from pgqueue.maintenance.rescuer import LOCK_KEY

LEASE = 1.0  # seconds: the killed worker's jobs come back quickly


@pytest.fixture
def dsn(clean_db: str) -> str:
    prepare_tables(clean_db)
    return clean_db


def _expired_running_job(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO pgqueue.jobs (task) VALUES ('t')")
        params = {
            "queues": ["default"],
            "limit": 1,
            "lease": 30.0,
            "worker_id": "gone",
            "token": str(uuid.uuid4()),
        }
        job_id = int(conn.execute(query("claim"), params).fetchall()[0][0])
        conn.execute("UPDATE pgqueue.jobs SET leased_until = now() - interval '1s'")
    return job_id


def test_one_rescuer_at_a_time(dsn: str) -> None:
    job_id = _expired_running_job(dsn)
    app = pgqueue.App(dsn)
    rescuer = Rescuer(app.database, interval=60)
    try:
        with psycopg.connect(dsn) as other:  # another worker's rescuer, mid-pass
            other.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            assert rescuer.run_once() == 0
            assert scalar(dsn, "SELECT status FROM pgqueue.jobs") == "running"
        assert rescuer.run_once() == 1
        assert scalar(dsn, "SELECT status FROM pgqueue.jobs WHERE id = %s", (job_id,)) == "queued"
        assert scalar(dsn, "SELECT attempts FROM pgqueue.jobs") == 1  # the lost attempt counts
    finally:
        rescuer.stop()
        app.close()


def test_rescuer_start_stop_are_idempotent(dsn: str) -> None:
    _expired_running_job(dsn)
    app = pgqueue.App(dsn)
    rescuer = Rescuer(app.database, interval=0.05)
    rescuer.stop()  # before start: fine
    rescuer.start()
    rescuer.start()
    wait_until(lambda: scalar(dsn, "SELECT status FROM pgqueue.jobs") == "queued")
    rescuer.stop()
    rescuer.stop()
    assert rescuer.rescued == 1
    app.close()


def _kill_mid_job(dsn: str, key: int) -> None:
    """Start a worker, wait until job ``key`` runs, SIGKILL the worker."""
    with worker_process(dsn, "--concurrency", "4", "--no-rescue", lease=LEASE) as first:
        wait_until(lambda: executions(dsn, key) == 1)
        first.signal(signal.SIGKILL)
        assert first.wait() == -signal.SIGKILL


def _drain_with_second_worker(dsn: str) -> None:
    args = ("--burst", "--rescue-interval", "0.2", "--poll-interval", "0.2")
    with worker_process(dsn, *args, lease=LEASE) as second:
        assert second.wait(30) == 0, second.output()


def test_killed_worker_job_reruns_elsewhere_after_its_lease_expires(dsn: str) -> None:
    app = pgqueue.App(dsn)
    sleeper = app.task_ref("t.sleep_once").enqueue(1, 60)
    others = [app.task_ref("t.record").enqueue(100 + i) for i in range(20)]
    _kill_mid_job(dsn, key=1)
    assert app.get_job(sleeper.id).status == "running"  # nobody renews it any more

    _drain_with_second_worker(dsn)
    job = app.get_job(sleeper.id)
    assert (job.status, job.attempts, job.result) == ("succeeded", 2, 1)
    assert job.errors[0]["error"].startswith("LeaseExpired: worker ")
    assert executions(dsn, 1) == 2  # ran again: at-least-once
    assert all(app.get_job(j.id).status == "succeeded" for j in others)  # nothing lost
    app.close()


def test_killed_transactional_job_committed_nothing_and_reruns(dsn: str) -> None:
    app = pgqueue.App(dsn)
    job = app.task_ref("t.tx_insert").enqueue(7, seconds=60)
    _kill_mid_job(dsn, key=7)  # killed after its INSERT, before its commit

    _drain_with_second_worker(dsn)
    job = app.get_job(job.id)
    assert (job.status, job.attempts) == ("succeeded", 2)
    assert executions(dsn, 7) == 2
    assert scalar(dsn, "SELECT count(*) FROM public.tx_effects WHERE key = 7") == 1  # once
    app.close()


def test_transactional_writes_commit_with_the_job_or_not_at_all(dsn: str) -> None:
    app = pgqueue.App(dsn, retry=pgqueue.RetryPolicy(base=0.01, cap=0.01), lease=5)
    effects = "SELECT count(*) FROM public.tx_effects WHERE key = %s"

    @app.task(name="tx_ok", transactional=True)
    def tx_ok(key: int, connection: Any = None) -> str:
        assert isinstance(connection, psycopg.Connection)
        connection.execute("INSERT INTO public.tx_effects VALUES (%s)", (key,))
        return "written"

    @app.task(name="tx_fail", transactional=True, max_attempts=2)
    async def tx_fail(key: int, connection: Any = None) -> None:
        assert isinstance(connection, psycopg.AsyncConnection)
        await connection.execute("INSERT INTO public.tx_effects VALUES (%s)", (key,))
        raise RuntimeError("after the write")

    @app.task(name="tx_lost", transactional=True)
    def tx_lost(key: int, connection: Any = None) -> None:
        connection.execute("INSERT INTO public.tx_effects VALUES (%s)", (key,))
        # Meanwhile the lease is lost (rescued and re-claimed elsewhere): fenced.
        with psycopg.connect(dsn, autocommit=True) as other:
            other.execute("UPDATE pgqueue.jobs SET lease_token = gen_random_uuid()"
                          " WHERE task = 'tx_lost'")  # fmt: skip

    ok, fail, lost = tx_ok.enqueue(1), tx_fail.enqueue(2), tx_lost.enqueue(3)
    app.run_worker(until_empty=False, poll_interval=0.1, max_tasks=4, rescue=False)
    assert (app.get_job(ok.id).status, app.get_job(ok.id).result) == ("succeeded", "written")
    assert scalar(dsn, effects, (1,)) == 1
    assert app.get_job(fail.id).status == "dead"
    assert scalar(dsn, effects, (2,)) == 0  # both attempts rolled back
    assert app.get_job(lost.id).status == "running"  # the fenced worker recorded nothing
    assert scalar(dsn, effects, (3,)) == 0
    app.close()
