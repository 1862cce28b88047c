"""Bulk enqueue by COPY, and the single enqueue's refusals (unique key, max_depth)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest

import pgqueue
from pgqueue._bulk import COPY_MIN

ODD = ["tab\there", "line\nbreak", "back\\slash", "quote\"'", "\u2603 é", "\\N", ""]


@pytest.fixture
def app(clean_db: str) -> Any:
    with pgqueue.App(clean_db) as app:
        yield app


def count(dsn: str, where: str = "true") -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(f"SELECT count(*) FROM pgqueue.jobs WHERE {where}").fetchone()
    assert row is not None
    return int(row[0])


def stored(dsn: str) -> dict[int, tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT id, queue, task, args, kwargs, priority, run_at, max_attempts, meta,"
            " status, created_at FROM pgqueue.jobs"
        ).fetchall()
    return {r[0]: r[1:] for r in rows}


def test_copy_path_stores_every_value_and_returns_the_rows(app: pgqueue.App, clean_db: str) -> None:
    task = app.task_ref("bulk.t", queue="bulk")
    at = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
    specs = [
        task.options(
            priority=i % 7 - 3, max_attempts=1 + i % 4, meta={"n": i, "s": ODD[i % 7]}
        ).job(ODD[i % 7], i, nested={"k": [ODD[(i + 1) % 7]]})
        for i in range(COPY_MIN * 3)
    ]
    specs[5] = task.options(delay=3600).job(5)
    specs[6] = task.options(run_at=at, queue="other").job()
    before = datetime.now(timezone.utc)
    jobs = app.enqueue_many(specs)
    db = stored(clean_db)
    assert len(db) == len(specs) == len(jobs)
    assert [j.id for j in jobs] == sorted(j.id for j in jobs)
    now = jobs[0].created_at
    assert abs((now - before).total_seconds()) < 5
    for spec, job in zip(specs, jobs, strict=True):
        row = db[job.id]
        assert row == (
            spec.queue, spec.task, list(spec.args), dict(spec.kwargs), spec.priority,
            job.run_at, spec.max_attempts, dict(spec.meta), "queued", now,
        )  # fmt: skip
        assert (job.args, job.kwargs, job.meta) == (row[2], row[3], row[7])
        assert job.status == "queued" and job.attempts == 0
    assert jobs[5].run_at == now + timedelta(hours=1)
    assert jobs[6].run_at == at and jobs[6].queue == "other"
    assert all(j.run_at == now for i, j in enumerate(jobs) if i not in (5, 6))


def test_copy_path_joins_the_callers_transaction(app: pgqueue.App, clean_db: str) -> None:
    task = app.task_ref("bulk.t")
    specs = [task.job(i) for i in range(COPY_MIN * 2)]
    with psycopg.connect(clean_db) as conn:
        app.enqueue_many(specs, connection=conn)
        assert count(clean_db) == 0  # not visible before the caller commits
        conn.rollback()
    assert count(clean_db) == 0
    with psycopg.connect(clean_db, autocommit=True) as conn:
        with conn.transaction():
            app.enqueue_many(specs, connection=conn)
        # An autocommit connection outside a transaction: prelude and COPY share one.
        app.enqueue_many(specs, connection=conn)
    assert count(clean_db) == 2 * len(specs)


def test_copy_path_wakes_each_ready_queue_once(app: pgqueue.App, clean_db: str) -> None:
    ready = app.task_ref("bulk.t", queue="ready")
    later = app.task_ref("bulk.t", queue="later")
    past = datetime.now(timezone.utc) - timedelta(minutes=1)
    specs = [ready.job(i) for i in range(COPY_MIN)] + [later.options(delay=60).job(1)]
    specs += [later.options(run_at=past, queue="due_at").job(2)]
    with psycopg.connect(clean_db, autocommit=True) as listener:
        listener.execute("LISTEN pgqueue_jobs")
        app.enqueue_many(specs)
        notes = list(listener.notifies(timeout=0.5))
    assert sorted(n.payload for n in notes) == ["due_at", "ready"]


def test_copy_path_max_depth_refuses_the_batch(app: pgqueue.App, clean_db: str) -> None:
    narrow = app.task_ref("bulk.t", queue="narrow")
    app.set_queue("narrow", max_depth=COPY_MIN * 2)
    app.enqueue_many([narrow.job(i) for i in range(COPY_MIN)])
    with psycopg.connect(clean_db, autocommit=True) as listener:
        listener.execute("LISTEN pgqueue_jobs")
        with pytest.raises(pgqueue.QueueFull, match="narrow"):
            app.enqueue_many([narrow.job(i) for i in range(COPY_MIN + 1)])
        assert list(listener.notifies(timeout=0.3)) == []  # a refused batch wakes nobody
    assert count(clean_db) == COPY_MIN
    app.enqueue_many([narrow.job(i) for i in range(COPY_MIN)])  # exactly at the limit
    assert count(clean_db) == 2 * COPY_MIN


def test_copy_path_non_json_argument_inserts_nothing(app: pgqueue.App, clean_db: str) -> None:
    task = app.task_ref("bulk.bad")
    specs = [task.job(i) for i in range(COPY_MIN)] + [task.job(b"bytes")]
    with pytest.raises(TypeError, match="argument of bulk\\.bad"):
        app.enqueue_many(specs)
    with pytest.raises(TypeError, match="argument of bulk\\.bad"):
        app.enqueue_many([task.job(float("nan"))] * COPY_MIN)
    assert count(clean_db) == 0


async def test_copy_path_async(clean_db: str) -> None:
    async with pgqueue.App(clean_db) as app:
        task = app.task_ref("bulk.t")
        jobs = await app.enqueue_many_async([task.job(ODD[i % 7]) for i in range(COPY_MIN * 2)])
        assert [j.args for j in jobs] == [[ODD[i % 7]] for i in range(COPY_MIN * 2)]
        async with await psycopg.AsyncConnection.connect(clean_db) as conn:
            await app.enqueue_many_async([task.job(1)] * COPY_MIN, connection=conn)
            await conn.rollback()
    assert count(clean_db) == COPY_MIN * 2


def test_single_enqueue_refusals(app: pgqueue.App, clean_db: str) -> None:
    task = app.task_ref("one.t", queue="narrow")
    first = task.options(unique_key="k").enqueue(1)
    assert task.options(unique_key="k").enqueue(2).id == first.id  # held: the holder
    app.set_queue("narrow", max_depth=1)
    with pytest.raises(pgqueue.QueueFull, match="narrow"):
        task.enqueue(3)
    # Full queue, the key held: the holder is the answer (nothing would be inserted).
    assert task.options(unique_key="k").enqueue(4).id == first.id
    with psycopg.connect(clean_db) as conn:
        conn.execute("UPDATE pgqueue.jobs SET status = 'succeeded' WHERE id = %s", (first.id,))
    # The key is free, but the queue is full of... nothing waiting: it is inserted.
    second = task.options(unique_key="k").enqueue(5)
    assert second.id != first.id and second.args == [5]
    # Full again, the key's history finished: QueueFull, not the old finished job.
    with psycopg.connect(clean_db) as conn:
        conn.execute("UPDATE pgqueue.jobs SET status = 'succeeded' WHERE id = %s", (second.id,))
    task.enqueue(6)
    with pytest.raises(pgqueue.QueueFull):
        task.options(unique_key="k").enqueue(7)
    assert count(clean_db) == 3


def test_single_enqueue_follows_limits_set_and_lifted_elsewhere(
    app: pgqueue.App, clean_db: str
) -> None:
    with pgqueue.App(clean_db) as admin:
        task = app.task_ref("one.t", queue="q")
        task.enqueue(1)  # learnt: no limit
        admin.set_queue("q", max_depth=2)
        task.enqueue(2)  # refused by the no-limit statement, retried with the counting one
        with pytest.raises(pgqueue.QueueFull):
            task.enqueue(3)
        admin.set_queue("q", clear=("max_depth",))
        for i in range(3):
            task.enqueue(4 + i)
    assert count(clean_db) == 5
