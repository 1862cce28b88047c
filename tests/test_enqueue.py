"""Enqueue: single, bulk, options, unique keys, bad input."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

import psycopg
import pytest

import pgqueue
from pgqueue import testing


@pytest.fixture
def app(clean_db: str) -> Any:
    with pgqueue.App(clean_db) as app:
        yield app


def make_tasks(app: pgqueue.App) -> tuple[Any, Any]:
    @app.task(queue="email", priority=5, max_attempts=5)
    def send_email(user_id: int, template: str = "welcome") -> dict[str, int]:
        return {"user_id": user_id}

    @app.task
    async def resize(photo_id: int) -> None:
        return None

    return send_email, resize


def rows(dsn: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


def test_enqueue_stores_the_job_as_declared(app: pgqueue.App, clean_db: str) -> None:
    send_email, resize = make_tasks(app)
    job = send_email.enqueue(42, template="hi")
    assert isinstance(job, pgqueue.Job)
    # The name defaults to module.qualname.
    assert job.task == f"{make_tasks.__module__}.make_tasks.<locals>.send_email"
    assert (job.queue, job.priority, job.max_attempts) == ("email", 5, 5)
    assert job.status == "queued" and job.attempts == 0
    stored = app.get_job(job.id)
    assert stored.args == [42] and stored.kwargs == {"template": "hi"}
    assert stored.run_at <= datetime.now(timezone.utc)
    assert resize.enqueue(7).queue == "default"
    assert resize.name.endswith("<locals>.resize")


def test_options_override_task_defaults(app: pgqueue.App) -> None:
    send_email, _ = make_tasks(app)
    job = send_email.options(delay=60, priority=9, queue="critical", max_attempts=2).enqueue(1)
    assert (job.queue, job.priority, job.max_attempts) == ("critical", 9, 2)
    assert job.run_at > datetime.now(timezone.utc) + timedelta(seconds=50)
    at = datetime.now(timezone.utc) + timedelta(hours=1)
    assert abs((send_email.options(run_at=at).enqueue(2).run_at - at).total_seconds()) < 0.001


def test_unknown_option_and_bad_values_are_errors(app: pgqueue.App) -> None:
    send_email, _ = make_tasks(app)
    with pytest.raises(TypeError):
        send_email.options(colour="red")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="priority"):
        send_email.options(priority=10**6)
    with pytest.raises(ValueError, match="delay"):
        send_email.options(delay=-1)
    with pytest.raises(ValueError, match="timezone-aware"):
        send_email.options(run_at=datetime(2030, 1, 1))
    with pytest.raises(TypeError, match=r"uid|argument"):
        send_email.enqueue()  # type: ignore[call-arg]


def test_non_json_argument_fails_before_touching_the_database(
    app: pgqueue.App, clean_db: str
) -> None:
    send_email, _ = make_tasks(app)
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        send_email.enqueue(object())
    with pytest.raises(TypeError, match="keyword argument"):
        send_email.enqueue(1, template={1, 2})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        send_email.enqueue(float("nan"))
    with pytest.raises(TypeError):
        app.enqueue_many([send_email.job(1), send_email.job(object())])
    testing.refute_enqueued(app)


def first_word(statement: Any) -> str:
    return next(ln for ln in str(statement).splitlines() if not ln.startswith("--")).split()[0]


class CountingCursor(psycopg.Cursor[Any]):
    executed: ClassVar[list[str]] = []

    def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        self.executed.append(first_word(query))
        return super().execute(query, *args, **kwargs)

    def copy(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        self.executed.append(first_word(statement))
        return super().copy(statement, *args, **kwargs)


@pytest.mark.parametrize(("count", "statements"), [(3000, ["WITH", "COPY"]), (20, ["WITH"])])
def test_enqueue_many_is_one_or_two_statements_in_order(
    app: pgqueue.App, clean_db: str, count: int, statements: list[str]
) -> None:
    send_email, resize = make_tasks(app)
    specs = [send_email.job(i) for i in range(count)] + [resize.options(priority=-3).job(99)]
    CountingCursor.executed = []
    with psycopg.connect(clean_db, cursor_factory=CountingCursor) as conn:
        jobs = app.enqueue_many(specs, connection=conn)
    # A big batch: a prelude (ids, now(), wake-ups) then COPY; a small one: one INSERT.
    assert CountingCursor.executed == statements
    assert [j.args for j in jobs[:3]] == [[0], [1], [2]]
    assert jobs[-1].task.endswith("resize") and jobs[-1].priority == -3
    ids = [j.id for j in jobs]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    stored = rows(clean_db, "SELECT id, args FROM pgqueue.jobs ORDER BY id")
    assert [(j.id, j.args) for j in jobs] == [(r[0], r[1]) for r in stored]
    assert app.enqueue_many([]) == []


def test_unique_key_returns_the_existing_unfinished_job(app: pgqueue.App, clean_db: str) -> None:
    send_email, _ = make_tasks(app)
    first = send_email.options(unique_key="welcome:42").enqueue(42)
    again = send_email.options(unique_key="welcome:42").enqueue(43)
    assert again.id == first.id and again.args == [42]
    many = app.enqueue_many(
        [
            send_email.options(unique_key=k).job(i)
            for i, k in enumerate(["a", "b", "a", "welcome:42"])
        ]
    )
    assert many[0].id == many[2].id and many[3].id == first.id and many[1].id != many[0].id
    assert rows(clean_db, "SELECT count(*) FROM pgqueue.jobs") == [(3,)]
    # Once the holder is finished, the key is free again.
    with psycopg.connect(clean_db) as conn:
        conn.execute("UPDATE pgqueue.jobs SET status = 'succeeded' WHERE id = %s", (first.id,))
    fresh = send_email.options(unique_key="welcome:42").enqueue(44)
    assert fresh.id != first.id and fresh.args == [44]


def test_enqueue_by_name_without_the_task_code(app: pgqueue.App) -> None:
    ref = app.task_ref("billing.tasks.charge", queue="billing")
    job = ref.options(priority=3).enqueue(10, currency="EUR")
    stored = app.get_job(job.id)
    assert (stored.task, stored.queue, stored.priority) == ("billing.tasks.charge", "billing", 3)
    assert stored.kwargs == {"currency": "EUR"}
    with pytest.raises(TypeError, match="reference by name"):
        ref(1)


def test_names_of_any_content_are_stored_as_given(app: pgqueue.App) -> None:
    odd = "q'; DROP TABLE pgqueue.jobs; --\"é\u2603"
    job = app.task_ref(odd, queue=odd).enqueue(odd)
    stored = app.get_job(job.id)
    assert (stored.task, stored.queue, stored.args) == (odd, odd, [odd])


def test_notify_once_per_queue_on_commit(app: pgqueue.App, clean_db: str) -> None:
    send_email, resize = make_tasks(app)
    with psycopg.connect(clean_db, autocommit=True) as listener:
        listener.execute("LISTEN pgqueue_jobs")
        app.enqueue_many([send_email.job(i) for i in range(50)] + [resize.job(1)])
        send_email.options(delay=3600).enqueue(1)  # not ready: wakes nobody
        notes = list(listener.notifies(timeout=0.5))
    assert sorted(n.payload for n in notes) == ["default", "email"]


def test_get_and_list_jobs(app: pgqueue.App) -> None:
    send_email, resize = make_tasks(app)
    a = send_email.enqueue(1)
    b = resize.enqueue(2)
    assert [j.id for j in app.list_jobs()] == [b.id, a.id]
    assert [j.id for j in app.list_jobs(queue="email")] == [a.id]
    assert [j.id for j in app.list_jobs(task=resize.name, status="queued")] == [b.id]
    assert app.list_jobs(older_than=3600) == []
    assert len(app.list_jobs(limit=1)) == 1
    with pytest.raises(ValueError, match="unknown status"):
        app.list_jobs(status="lost")
    with pytest.raises(ValueError, match="limit"):
        app.list_jobs(limit=-1)
    with pytest.raises(pgqueue.JobNotFound):
        app.get_job(10**9)


async def test_async_enqueue_and_inspection(clean_db: str) -> None:
    async with pgqueue.App(clean_db) as app:
        send_email, _ = make_tasks(app)
        job = await send_email.enqueue_async(5)
        jobs = await app.enqueue_many_async([send_email.job(i) for i in range(10)])
        assert len(jobs) == 10
        got = await app.get_job_async(job.id)
        assert got.args == [5]
        listed = await app.list_jobs_async(queue="email", limit=100)
        assert len(listed) == 11


def test_transactional_task_connection_is_the_workers(app: pgqueue.App, clean_db: str) -> None:
    @app.task(transactional=True)
    def record(order_id: int, connection: Any) -> None:
        connection.execute("SELECT %s", (order_id,))

    job = record.enqueue(7)  # `connection` is supplied by the worker, not the caller
    assert app.get_job(job.id).args == [7] and app.get_job(job.id).kwargs == {}
    with psycopg.connect(clean_db) as conn:
        record.enqueue(8, connection=conn)  # here it is the caller's transaction
        conn.rollback()
    assert [j.args for j in app.list_jobs()] == [[7]]
    with pytest.raises(TypeError, match="order_id"):
        record.enqueue()
