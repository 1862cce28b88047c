"""The single async enqueue on a pooled connection (``pgqueue/_lean.py``): the job it
returns, the refusals, the errors and the connection it leaves behind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from psycopg.pq import TransactionStatus

import pgqueue
from pgqueue import _lean

STATEMENT = _lean._NAME.decode()


def one_connection(dsn: str, **kwargs: Any) -> pgqueue.App:
    return pgqueue.App(dsn, min_connections=1, max_connections=1, **kwargs)


async def pooled(app: pgqueue.App) -> psycopg.AsyncConnection[Any]:
    """The pool's one connection, for a look behind the enqueue (returned at once)."""
    pool = await app.database.pool_async()
    conn = await pool.getconn()
    await pool.putconn(conn)
    return conn


async def warmed(app: pgqueue.App, name: str) -> tuple[Any, psycopg.AsyncConnection[Any]]:
    """A task of queue "lean", one job enqueued (the statement prepared), and the connection."""
    task = app.task_ref(name, queue="lean")
    await task.enqueue_async()
    return task, await pooled(app)


@asynccontextmanager
async def in_flight(
    dsn: str, app: pgqueue.App, name: str
) -> AsyncIterator[tuple[Any, int, asyncio.Task[Any]]]:
    """``warmed``, then an enqueue waiting on a lock of the jobs table (held until
    the block ends): the task, the pooled connection's backend, the enqueue."""
    task, conn = await warmed(app, name)
    pid = conn.info.backend_pid
    async with await psycopg.AsyncConnection.connect(dsn) as locker:
        await locker.execute("LOCK TABLE pgqueue.jobs IN ACCESS EXCLUSIVE MODE")
        waiting = asyncio.create_task(task.enqueue_async())
        await wait_for_lock(dsn, pid)
        yield task, pid, waiting


async def prepared_here(conn: psycopg.AsyncConnection[Any]) -> bool:
    cur = await conn.execute("SELECT count(*) FROM pg_prepared_statements WHERE name = %s",
                             (STATEMENT,))  # fmt: skip
    return (await cur.fetchone()) == (1,)


async def test_the_job_returned_is_the_row_stored(clean_db: str) -> None:
    async with one_connection(clean_db) as app:
        task = app.task_ref("lean.full", queue="lean")
        when = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=5)))
        job = await task.options(priority=7, run_at=when, max_attempts=9,
                                 unique_key="k1", meta={"m": "é"}).enqueue_async(
            1, "two", [3.5], kw={"x": None})  # fmt: skip
        assert await prepared_here(await pooled(app))  # it went through libpq directly
        stored = await app.get_job_async(job.id)
        for field in ("id", "queue", "task", "args", "kwargs", "priority", "status",
                      "run_at", "max_attempts", "unique_key", "created_at", "meta"):  # fmt: skip
            assert getattr(job, field) == getattr(stored, field), field
        assert job.run_at == when and job.args == [1, "two", [3.5]] and job.priority == 7
        delayed = await task.options(delay=30).enqueue_async()
        assert delayed.run_at - delayed.created_at == timedelta(seconds=30)


async def test_a_held_unique_key_returns_its_holder(clean_db: str) -> None:
    async with one_connection(clean_db) as app:
        task = app.task_ref("lean.unique", queue="lean")
        first = await task.options(unique_key="once").enqueue_async(1)
        again = await task.options(unique_key="once").enqueue_async(2)
        assert again.id == first.id and again.args == [1]
        assert len(await app.list_jobs_async(queue="lean")) == 1
        conn = await pooled(app)
        assert conn.info.transaction_status == TransactionStatus.IDLE


async def test_a_queue_with_a_max_depth_refuses_past_it(clean_db: str) -> None:
    async with one_connection(clean_db) as app:
        await app.set_queue_async("capped", max_depth=2)
        task = app.task_ref("lean.capped", queue="capped")
        await task.enqueue_async()  # learns the limit: the counting statement from now on
        await task.enqueue_async()
        with pytest.raises(pgqueue.QueueFull):
            await task.enqueue_async()
        assert len(await app.list_jobs_async(queue="capped")) == 2


async def test_server_errors_are_raised_as_before_and_the_connection_stays_usable(
    clean_db: str,
) -> None:
    async with one_connection(clean_db) as app:
        task, conn = await warmed(app, "lean.errors")
        await conn.execute("SET default_transaction_read_only = on")
        with pytest.raises(pgqueue.DatabaseUnavailable, match="read-only"):
            await task.enqueue_async()
        assert conn.info.transaction_status == TransactionStatus.IDLE
        await conn.execute("SET default_transaction_read_only = off")
        await conn.execute("SET lock_timeout = '50ms'")
        async with await psycopg.AsyncConnection.connect(clean_db) as locker:
            await locker.execute("LOCK TABLE pgqueue.jobs IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(psycopg.errors.LockNotAvailable):
                await task.enqueue_async()
        assert conn.info.transaction_status == TransactionStatus.IDLE
        await conn.execute("RESET lock_timeout")
        job = await task.enqueue_async()  # the same connection, still good
        assert (await pooled(app)) is conn and (await app.get_job_async(job.id)).id == job.id


async def test_a_backend_terminated_mid_statement_is_unavailable_then_replaced(
    clean_db: str,
) -> None:
    async with one_connection(clean_db) as app:
        async with in_flight(clean_db, app, "lean.terminated") as (task, pid, waiting):
            async with await psycopg.AsyncConnection.connect(clean_db, autocommit=True) as kill:
                await kill.execute("SELECT pg_terminate_backend(%s)", (pid,))
            with pytest.raises(pgqueue.DatabaseUnavailable):
                await waiting
        job = await task.enqueue_async()  # a new connection, the statement prepared anew
        replaced = await pooled(app)
        assert replaced.info.backend_pid != pid and await prepared_here(replaced)
        assert (await app.get_job_async(job.id)).id == job.id


async def test_a_cancelled_enqueue_cancels_its_statement_and_drops_the_connection(
    clean_db: str,
) -> None:
    async with one_connection(clean_db) as app:
        async with in_flight(clean_db, app, "lean.cancelled") as (task, pid, waiting):
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
        # The lock is gone: a statement still running would insert now.
        assert len(await app.list_jobs_async(queue="lean")) == 1
        conn = await pooled(app)
        assert conn.info.backend_pid != pid
        assert conn.info.transaction_status == TransactionStatus.IDLE
        await task.enqueue_async()
        assert len(await app.list_jobs_async(queue="lean")) == 2


async def wait_for_lock(dsn: str, pid: int) -> None:
    """Until backend ``pid`` waits on a lock (the enqueue is in flight)."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as watch:
        for _ in range(500):
            cur = await watch.execute(
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", (pid,)
            )
            if (await cur.fetchone()) == (True,):
                return
            await asyncio.sleep(0.01)
    raise AssertionError(f"backend {pid} never waited on the lock")


async def test_concurrent_enqueues_share_the_pool(clean_db: str) -> None:
    async with pgqueue.App(clean_db, min_connections=1, max_connections=4) as app:
        task = app.task_ref("lean.concurrent", queue="lean")
        jobs = await asyncio.gather(*(task.enqueue_async(i) for i in range(200)))
        assert len({j.id for j in jobs}) == 200
        assert sorted(j.args[0] for j in jobs) == list(range(200))
        assert len(await app.list_jobs_async(queue="lean", limit=500)) == 200
        pool = await app.database.pool_async()
        conns = [await pool.getconn() for _ in range(pool.get_stats()["pool_size"])]
        try:
            for conn in conns:
                assert conn.info.transaction_status == TransactionStatus.IDLE
        finally:
            for conn in conns:
                await pool.putconn(conn)


@pytest.mark.parametrize("reset", ["DISCARD ALL", "DEALLOCATE ALL", f"DEALLOCATE {STATEMENT}"])
async def test_a_statement_lost_to_a_reset_is_prepared_again(clean_db: str, reset: str) -> None:
    async with one_connection(clean_db) as app:
        task, conn = await warmed(app, "lean.reset")
        await conn.execute(reset)
        assert not await prepared_here(conn)
        job = await task.enqueue_async(2)
        assert (await pooled(app)) is conn and await prepared_here(conn)
        assert (await app.get_job_async(job.id)).args == [2]


async def test_without_prepared_statements_the_usual_path_runs(clean_db: str) -> None:
    async with one_connection(clean_db, prepare=False) as app:  # e.g. behind PgBouncer
        job = await app.task_ref("lean.unprepared", queue="lean").enqueue_async(3)
        assert not await prepared_here(await pooled(app))
        assert (await app.get_job_async(job.id)).args == [3]


async def test_the_callers_connection_keeps_its_transaction(clean_db: str) -> None:
    async with one_connection(clean_db) as app:
        task = app.task_ref("lean.transactional", queue="lean")
        async with await psycopg.AsyncConnection.connect(clean_db) as conn:
            await task.enqueue_async(1, connection=conn)
            await conn.rollback()
        assert await app.list_jobs_async(queue="lean") == []
        assert not await prepared_here(await pooled(app))
