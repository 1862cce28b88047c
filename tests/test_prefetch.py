"""Claim-ahead (``prefetch``): buffered jobs are held, renewed, cancellable and
released unstarted; limits, max_tasks and ``prefetch=0`` behave."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import pytest
from test_worker_app import scalar, wait_until

import pgqueue
from pgqueue._errors import ConfigurationError
from pgqueue.worker import Worker, WorkerConfig


@pytest.fixture
def app(clean_db: str) -> Iterator[pgqueue.App]:
    with pgqueue.App(clean_db) as app:
        yield app


class Gate:
    """A sync task body that records its argument and blocks until opened."""

    def __init__(self) -> None:
        self.ran: list[int] = []
        self.open = threading.Event()

    def __call__(self, n: int) -> None:
        self.ran.append(n)
        assert self.open.wait(30)


@contextmanager
def running(app: pgqueue.App, **options: object) -> Iterator[tuple[Worker, list[int]]]:
    """A worker on a thread; stopped on exit. Yields it and, after exit, its exit code."""
    config = WorkerConfig(install_signal_handlers=False, queues=("default",), **options)  # type: ignore[arg-type]
    worker = Worker(app.database, app.registry, config)
    code: list[int] = []
    thread = threading.Thread(target=lambda: code.append(worker.run()))
    thread.start()
    try:
        yield worker, code
    finally:
        worker.stop()
        thread.join(60)
        assert not thread.is_alive()


def jobs(dsn: str) -> list[tuple[int, str, int]]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT id, status, attempts FROM pgqueue.jobs ORDER BY id")
        return [(r[0], r[1], r[2]) for r in rows]


def test_negative_prefetch_is_refused_and_the_default_is_two_per_slot() -> None:
    with pytest.raises(ConfigurationError):
        WorkerConfig(prefetch=-1)
    assert WorkerConfig(concurrency=16).prefetch_jobs == 32
    assert WorkerConfig(concurrency=16, prefetch=0).prefetch_jobs == 0


def test_buffered_jobs_are_released_unstarted_at_shutdown(app: pgqueue.App, clean_db: str) -> None:
    gate = Gate()
    task = app.task(name="gate")(gate)
    ids = [task.enqueue(i).id for i in range(3)]
    with running(app, concurrency=1, prefetch=2) as (worker, code):
        wait_until(lambda: gate.ran and len(worker.buffer) == 2)
        # All three are leased to this worker; one runs.
        assert [s for _, s, _ in jobs(clean_db)] == ["running"] * 3
        worker.stop()
        wait_until(lambda: worker.stopping)  # the request reaches the loop, then the job ends
        gate.open.set()
    assert code == [0] and gate.ran == [0]
    first, *rest = ids
    assert jobs(clean_db) == [(first, "succeeded", 1)] + [(i, "queued", 0) for i in rest]
    held = "SELECT count(*) FROM pgqueue.jobs WHERE status = 'queued' AND worker_id IS NOT NULL"
    assert scalar(clean_db, held) == 0


def test_the_heartbeat_renews_the_lease_of_a_buffered_job(app: pgqueue.App, clean_db: str) -> None:
    gate = Gate()
    task = app.task(name="gate")(gate)
    task.enqueue(0)
    buffered = task.enqueue(1).id
    sql = "SELECT leased_until FROM pgqueue.jobs WHERE id = %s"
    with running(app, concurrency=1, prefetch=1, heartbeat_interval=0.05) as (worker, _):
        wait_until(lambda: [j.id for j in worker.buffer] == [buffered])
        first: datetime = scalar(clean_db, sql, (buffered,))
        wait_until(lambda: scalar(clean_db, sql, (buffered,)) > first)
        assert [j.id for j in worker.buffer] == [buffered]  # still unstarted
        gate.open.set()
        wait_until(lambda: gate.ran == [0, 1])  # it runs once the slot frees up


def test_cancelling_a_buffered_job_ends_it_cancelled_without_running_it(
    app: pgqueue.App, clean_db: str
) -> None:
    gate = Gate()
    task = app.task(name="gate")(gate)
    first, buffered, last = (task.enqueue(i).id for i in range(3))
    status = "SELECT status FROM pgqueue.jobs WHERE id = %s"
    with running(app, concurrency=1, prefetch=2) as (worker, _):
        wait_until(lambda: len(worker.buffer) == 2)
        app.cancel_jobs([buffered])
        wait_until(lambda: scalar(clean_db, status, (buffered,)) == "cancelled")
        assert [j.id for j in worker.buffer] == [last]
        gate.open.set()
        wait_until(lambda: scalar(clean_db, status, (last,)) == "succeeded")
    assert gate.ran == [0, 2]
    assert scalar(clean_db, status, (first,)) == "succeeded"


def test_a_limited_queue_is_not_overrun_by_buffered_jobs(app: pgqueue.App, clean_db: str) -> None:
    app.set_queue("default", max_running=2)
    lock = threading.Lock()
    now, most = [0], [0]

    @app.task(name="count")
    def count(n: int) -> None:
        with lock:
            now[0] += 1
            most[0] = max(most[0], now[0])
        # Leased jobs of the queue (running here or buffered) never pass the limit.
        leased = scalar(clean_db, "SELECT count(*) FROM pgqueue.jobs WHERE status = 'running'")
        assert leased <= 2, leased
        with lock:
            now[0] -= 1

    for i in range(20):
        count.enqueue(i)
    with running(app, concurrency=8, prefetch=8):
        wait_until(lambda: scalar(clean_db, "SELECT count(*) FROM pgqueue.jobs "
                                            "WHERE status = 'succeeded'") == 20)  # fmt: skip
    assert most[0] <= 2
    assert [s for _, s, _ in jobs(clean_db)] == ["succeeded"] * 20


def test_max_tasks_counts_buffered_jobs(app: pgqueue.App, clean_db: str) -> None:
    @app.task(name="quick")
    def quick(n: int) -> None:
        pass

    for i in range(6):
        quick.enqueue(i)
    config = WorkerConfig(install_signal_handlers=False, concurrency=2, prefetch=4, max_tasks=3)
    worker = Worker(app.database, app.registry, config)
    assert worker.run() == 75  # recycled after exactly max_tasks jobs
    assert sorted(s for _, s, _ in jobs(clean_db)) == ["queued"] * 3 + ["succeeded"] * 3
    assert all(a == 0 for _, s, a in jobs(clean_db) if s == "queued")


def test_priority_order_holds_through_the_buffer(app: pgqueue.App) -> None:
    order: list[int] = []

    @app.task(name="note")
    def note(n: int) -> None:
        order.append(n)

    for n, priority in enumerate((0, 5, -3, 5, 9, 1, 7)):
        note.options(priority=priority).enqueue(n)
    config = WorkerConfig(install_signal_handlers=False, concurrency=1, prefetch=6,
                          until_empty=True)  # fmt: skip
    assert Worker(app.database, app.registry, config).run() == 0
    assert order == [4, 6, 1, 3, 5, 0, 2]


def test_prefetch_zero_leases_only_what_runs(app: pgqueue.App, clean_db: str) -> None:
    gate = Gate()
    task = app.task(name="gate")(gate)
    for i in range(3):
        task.enqueue(i)
    with running(app, concurrency=1, prefetch=0) as (worker, _):
        wait_until(lambda: gate.ran)
        assert [s for _, s, _ in jobs(clean_db)] == ["running", "queued", "queued"]
        assert not worker.buffer
        gate.open.set()
        wait_until(lambda: gate.ran == [0, 1, 2])
