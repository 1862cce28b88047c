"""Unique keys are unique within their task by default; or within a queue, or globally."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

import pgqueue
from pgqueue._migrate import migrate_dsn


@pytest.fixture
def app(clean_db: str) -> Any:
    with pgqueue.App(clean_db) as application:
        yield application


def unfinished(dsn: str, key: str) -> list[tuple[str, str]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT task, queue FROM pgqueue.jobs WHERE unique_key = %s"
            " AND status IN ('queued', 'running', 'failed') ORDER BY id",
            (key,),
        ).fetchall()
    return [(r[0], r[1]) for r in rows]


def test_another_task_with_the_same_key_gets_its_own_job(app: Any, clean_db: str) -> None:
    a, b = app.task_ref("t.a"), app.task_ref("t.b")
    job_a = a.options(unique_key="user:42").enqueue(1)
    job_b = b.options(unique_key="user:42").enqueue(2)

    assert job_b.id != job_a.id
    assert (job_a.task, job_b.task) == ("t.a", "t.b")
    assert unfinished(clean_db, "user:42") == [("t.a", "default"), ("t.b", "default")]


def test_same_task_same_key_returns_the_existing_job(app: Any) -> None:
    a = app.task_ref("t.a")
    first = a.options(unique_key="k").enqueue(1)
    again = a.options(unique_key="k", queue="other").enqueue(2)  # task scope: any queue

    assert again.id == first.id
    assert again.args == [1]


def test_enqueue_many_scopes_keys_per_task(app: Any, clean_db: str) -> None:
    a, b = app.task_ref("t.a"), app.task_ref("t.b")
    held = a.options(unique_key="k").enqueue(0)

    jobs = app.enqueue_many([
        a.options(unique_key="k").job(1),   # held by `held`
        b.options(unique_key="k").job(2),   # its own
        b.options(unique_key="k").job(3),   # held by the one just above
        a.options(unique_key="k2").job(4),
    ])  # fmt: skip

    assert jobs[0].id == held.id
    assert jobs[1].task == "t.b" and jobs[1].args == [2]
    assert jobs[2].id == jobs[1].id
    assert jobs[3].unique_key == "k2" and jobs[3].id not in (held.id, jobs[1].id)
    assert unfinished(clean_db, "k") == [("t.a", "default"), ("t.b", "default")]


async def test_async_enqueue_uses_the_scope(app: Any) -> None:
    a, b = app.task_ref("t.a"), app.task_ref("t.b")
    job_a = await a.options(unique_key="k").enqueue_async(1)
    job_b = await b.options(unique_key="k").enqueue_async(2)
    again = await b.options(unique_key="k").enqueue_async(3)

    assert job_b.id != job_a.id
    assert again.id == job_b.id


def test_queue_scope_spans_the_tasks_of_a_queue(app: Any) -> None:
    a, b = app.task_ref("t.a", queue="mail"), app.task_ref("t.b", queue="mail")
    first = a.options(unique_key="digest", unique_scope="queue").enqueue(1)

    same_queue = b.options(unique_key="digest", unique_scope="queue").enqueue(2)
    other_queue = b.options(unique_key="digest", unique_scope="queue", queue="x").enqueue(3)

    assert same_queue.id == first.id
    assert other_queue.id != first.id


def test_global_scope_spans_everything(app: Any) -> None:
    a, b = app.task_ref("t.a"), app.task_ref("t.b", queue="q2")
    first = a.options(unique_key="once", unique_scope="global").enqueue(1)
    second = b.options(unique_key="once", unique_scope="global").enqueue(2)

    assert second.id == first.id


def test_a_task_declares_its_scope(app: Any) -> None:
    @app.task(name="t.declared", unique_scope="queue")
    def declared(n: int) -> None: ...

    other = app.task_ref("t.other")
    first = declared.options(unique_key="k").enqueue(1)
    second = other.options(unique_key="k", unique_scope="queue").enqueue(2)

    assert second.id == first.id


def test_unknown_scope_is_a_value_error_before_io() -> None:
    app = pgqueue.App("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(ValueError, match="unique_scope"):
        app.task_ref("t.a").options(unique_key="k", unique_scope="tenant")
    with pytest.raises(ValueError, match="unique_scope"):
        pgqueue.JobSpec(task="t.a", unique_scope="everywhere")


def test_migration_round_trip_restores_the_global_index(fresh_db_dsn: str) -> None:
    migrate_dsn(fresh_db_dsn)
    with psycopg.connect(fresh_db_dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO pgqueue.jobs (task, unique_key, unique_scope)"
            " VALUES ('t.a', 'k', 'task'), ('t.b', 'k', 'task')"
        )
        conn.execute("DELETE FROM pgqueue.jobs WHERE task = 't.b'")  # downgrade needs this

    migrate_dsn(fresh_db_dsn, "0001", down=True)
    with psycopg.connect(fresh_db_dsn, autocommit=True) as conn:
        assert conn.execute(
            "SELECT count(*) FROM information_schema.columns"
            " WHERE table_schema = 'pgqueue' AND column_name = 'unique_scope'"
        ).fetchone() == (0,)
        with pytest.raises(psycopg.errors.UniqueViolation):  # global again, as in 0001
            conn.execute("INSERT INTO pgqueue.jobs (task, unique_key) VALUES ('t.b', 'k')")

    migrate_dsn(fresh_db_dsn)
    with psycopg.connect(fresh_db_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO pgqueue.jobs (task, unique_key) VALUES ('t.b', 'k')")
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO pgqueue.jobs (task, unique_key) VALUES ('t.b', 'k')")
        rows = conn.execute("SELECT task, unique_scope FROM pgqueue.jobs ORDER BY 1").fetchall()
    assert rows == [("t.a", "task"), ("t.b", "task")]
