"""The worker in this process: outcomes, retries, dead letter, timeouts, queues, results."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from test_worker_app import wait_until

import pgqueue
from pgqueue.worker import Worker, WorkerConfig

FAST = {"poll_interval": 0.1, "rescue_interval": 0.2}


@pytest.fixture
def app(clean_db: str) -> Iterator[pgqueue.App]:
    app = pgqueue.App(clean_db, lease=5, retry=pgqueue.RetryPolicy(base=0.02, cap=0.05))
    yield app
    app.close()


def drain(app: pgqueue.App, queues: Any = None, **options: Any) -> int:
    """Run a burst worker until the queues are empty."""
    return app.run_worker(queues, until_empty=True, **{**FAST, **options})


@contextmanager
def running_worker(app: pgqueue.App, **options: Any) -> Iterator[Worker]:
    """A worker on a thread of its own, stopped (gracefully) at the end."""
    config = WorkerConfig(install_signal_handlers=False, **{**FAST, **options})
    worker = Worker(app.database, app.registry, config)
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(worker.run()), daemon=True)
    thread.start()
    wait_until(lambda: worker.heartbeat is not None and worker.heartbeat.beats > 0)
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(30)
        assert not thread.is_alive()


def job(app: pgqueue.App, job_id: int) -> pgqueue.Job:
    return app.get_job(job_id)


# -- outcomes ---------------------------------------------------------------------------


def test_sync_and_async_tasks_succeed_with_json_results(app: pgqueue.App) -> None:
    @app.task(name="add")
    def add(a: int, b: int) -> dict[str, int]:
        return {"sum": a + b}

    @app.task(name="mul")
    async def mul(a: int, b: int) -> int:
        await asyncio.sleep(0.01)
        return a * b

    @app.task(name="nothing")
    def nothing() -> None:
        return None

    jobs = [add.enqueue(2, 3), mul.enqueue(4, b=5), nothing.enqueue()]
    assert drain(app) == 0
    done = [job(app, j.id) for j in jobs]
    assert [j.status for j in done] == ["succeeded"] * 3
    assert [j.result for j in done] == [{"sum": 5}, 20, None]
    assert all(j.attempts == 1 and j.finished_at and j.leased_until is None for j in done)


def test_run_worker_async_embeds_in_a_running_loop(app: pgqueue.App) -> None:
    @app.task(name="inside")
    async def inside(x: int) -> int:
        return x + 1

    async def main() -> tuple[int, int]:
        j = await inside.enqueue_async(41)
        code = await app.run_worker_async(until_empty=True, **FAST)
        result = (await app.get_job_async(j.id)).result
        await app.aclose()
        return code, result

    assert asyncio.run(main()) == (0, 42)


def test_non_json_result_fails_the_attempt_with_a_clear_error(app: pgqueue.App) -> None:
    @app.task(name="setty", max_attempts=1)
    def setty() -> Any:
        return {1, 2}

    j = setty.enqueue()
    drain(app)
    j = job(app, j.id)
    assert j.status == "dead"
    assert j.last_error is not None
    assert "result of task setty is not JSON-serialisable" in j.last_error


def test_failures_retry_with_backoff_then_die_keeping_every_error(app: pgqueue.App) -> None:
    calls: list[float] = []

    @app.task(name="flaky", max_attempts=3)
    def flaky() -> None:
        calls.append(time.monotonic())
        raise ValueError(f"attempt {len(calls)} failed")

    j = flaky.enqueue()
    drain(app)
    j = job(app, j.id)
    assert len(calls) == 3
    assert (j.status, j.attempts) == ("dead", 3)
    assert j.last_error == "ValueError: attempt 3 failed"
    assert [e["attempt"] for e in j.errors] == [1, 2, 3]
    assert [e["status"] for e in j.errors] == ["failed", "failed", "dead"]
    assert all("Traceback" in e["traceback"] and "in flaky" in e["traceback"] for e in j.errors)
    assert j.id in [r[0] for r in _rows(app, "SELECT id FROM pgqueue.dead_jobs")]


def test_retry_waits_for_its_backoff(app: pgqueue.App) -> None:
    policy = pgqueue.RetryPolicy(base=30, cap=30)

    @app.task(name="slow_retry", retry=policy)
    def slow_retry() -> None:
        raise RuntimeError("try again later")

    j = slow_retry.enqueue()
    with running_worker(app):
        wait_until(lambda: job(app, j.id).status == "failed")
    j = job(app, j.id)
    failed_at = _rows(app, "SELECT (errors->0->>'at')::timestamptz FROM pgqueue.jobs")[0][0]
    wait = (j.run_at - failed_at).total_seconds()
    assert -0.5 <= wait <= 30.5  # full jitter: uniform(0, min(cap, base * 2**0))
    assert j.attempts == 1 and j.finished_at is None


def test_backoff_bounds() -> None:
    import random

    policy = pgqueue.RetryPolicy(base=1.0, cap=10.0)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (30, 10.0)]:
        delays = [policy.delay(attempt, rng) for _ in range(500)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.9  # full jitter reaches the ceiling


def test_retry_and_discard_raised_by_the_task(app: pgqueue.App) -> None:
    runs: list[str] = []

    @app.task(name="again", max_attempts=5)
    def again() -> str:
        runs.append("again")
        if len(runs) < 3:
            raise pgqueue.Retry(delay=0.05, reason="not yet")
        return "third time"

    @app.task(name="discard", max_attempts=5)
    def discard() -> None:
        raise pgqueue.Discard("bad input")

    a, d = again.enqueue(), discard.enqueue()
    drain(app)
    a, d = job(app, a.id), job(app, d.id)
    assert (a.status, a.attempts, a.result) == ("succeeded", 3, "third time")
    assert [e["error"] for e in a.errors] == ["Retry: not yet", "Retry: not yet"]
    assert (d.status, d.attempts, d.last_error) == ("dead", 1, "Discard: bad input")


def test_unknown_task_goes_dead_and_the_worker_goes_on(app: pgqueue.App) -> None:
    @app.task(name="known")
    def known() -> str:
        return "ok"

    ghost = app.task_ref("no.such.task").enqueue()
    fine = known.enqueue()
    assert drain(app) == 0
    ghost, fine = job(app, ghost.id), job(app, fine.id)
    assert ghost.status == "dead" and ghost.attempts == 1
    assert ghost.last_error is not None
    assert "no task named 'no.such.task'" in ghost.last_error
    assert fine.status == "succeeded"


def test_timeouts_fail_sync_and_async_attempts(app: pgqueue.App) -> None:
    release = threading.Event()

    @app.task(name="stuck_sync", timeout=0.3, max_attempts=1)
    def stuck_sync() -> None:
        release.wait(10)  # cannot be interrupted: its thread is abandoned

    @app.task(name="stuck_async", timeout=0.3, max_attempts=1)
    async def stuck_async() -> None:
        await asyncio.sleep(10)

    @app.task(name="after")
    def after() -> str:
        return "still working"

    s, a = stuck_sync.enqueue(), stuck_async.enqueue()
    later = after.options(delay=0.5).enqueue()
    try:
        assert drain(app, concurrency=2) == 0
    finally:
        release.set()
    s, a, later = job(app, s.id), job(app, a.id), job(app, later.id)
    assert s.status == a.status == "dead"
    assert s.last_error == "JobTimeout: task stuck_sync exceeded its timeout of 0.3s"
    assert a.last_error == "JobTimeout: task stuck_async exceeded its timeout of 0.3s"
    assert later.status == "succeeded"  # the abandoned thread's slot was given back


# -- claiming: order, queues, delays ------------------------------------------------------


def test_priority_then_run_at_then_id(app: pgqueue.App) -> None:
    order: list[int] = []

    @app.task(name="note")
    def note(n: int) -> None:
        order.append(n)

    note.options(priority=0).enqueue(1)
    note.options(priority=5).enqueue(2)
    note.options(priority=-3).enqueue(3)
    note.options(priority=5).enqueue(4)
    note.options(priority=9).enqueue(5)
    drain(app, concurrency=1)
    assert order == [5, 2, 4, 1, 3]


def test_listed_queues_drain_in_strict_order(app: pgqueue.App) -> None:
    order: list[str] = []

    @app.task(name="q")
    def q(name: str) -> None:
        order.append(name)

    for _ in range(5):
        q.options(queue="low").enqueue("low")
        q.options(queue="high", priority=-100).enqueue("high")
    drain(app, ["high", "low"], concurrency=1)
    assert order == ["high"] * 5 + ["low"] * 5


def test_weighted_queues_share_the_worker(app: pgqueue.App) -> None:
    order: list[str] = []

    @app.task(name="w")
    def w(name: str) -> None:
        order.append(name)

    for _ in range(40):
        w.options(queue="a").enqueue("a")
        w.options(queue="b").enqueue("b")
    drain(app, "a:1,b:1", concurrency=1)
    assert len(order) == 80
    assert {"a", "b"} <= set(order[:20])  # strict order would run 40 "a" first


def test_delayed_job_waits_for_run_at(app: pgqueue.App) -> None:
    @app.task(name="later")
    def later() -> str:
        return "now"

    j = later.options(delay=0.6).enqueue()
    assert drain(app) == 0
    j = job(app, j.id)
    assert j.status == "succeeded"
    assert j.started_at is not None and j.started_at >= j.run_at


def test_max_running_caps_a_limited_queue(app: pgqueue.App) -> None:
    app.set_queue("narrow", max_running=2)
    lock = threading.Lock()
    running: list[int] = []
    peak: list[int] = []

    @app.task(name="narrow", queue="narrow")
    def narrow() -> None:
        with lock:
            running.append(1)
            peak.append(len(running))
        time.sleep(0.15)
        with lock:
            running.pop()

    @app.task(name="wide")
    def wide() -> None:
        time.sleep(0.05)

    jobs = [narrow.enqueue() for _ in range(6)] + [wide.enqueue() for _ in range(6)]
    assert drain(app, ["narrow", "default"], concurrency=8) == 0
    assert max(peak) == 2  # never more than max_running at once, though slots were free
    assert all(job(app, j.id).status == "succeeded" for j in jobs)


def test_rate_limit_spreads_starts_over_windows(app: pgqueue.App) -> None:
    app.set_queue("metered", rate_limit=3, rate_period=0.5)

    @app.task(name="metered", queue="metered")
    def metered() -> None:
        return None

    jobs = [metered.enqueue() for _ in range(6)]
    assert drain(app, ["metered"], concurrency=6) == 0
    starts = sorted(job(app, j.id).started_at for j in jobs)  # type: ignore[type-var]
    assert (starts[3] - starts[0]).total_seconds() >= 0.5  # the 4th waited for a new window


# -- wake-ups, observability --------------------------------------------------------------


def test_an_idle_worker_is_woken_by_notify_not_polling(app: pgqueue.App) -> None:
    @app.task(name="ping")
    def ping() -> str:
        return "pong"

    with running_worker(app, poll_interval=60):
        time.sleep(0.2)  # idle, listening
        j = ping.enqueue()
        assert j.wait(timeout=10) == "pong"  # long before the next poll


def test_poll_only_mode(app: pgqueue.App) -> None:
    @app.task(name="polled")
    def polled() -> str:
        return "found"

    with running_worker(app, listen=False, poll_interval=0.1):
        assert polled.enqueue().wait(timeout=10) == "found"


def test_job_wait_sync_and_async(app: pgqueue.App) -> None:
    @app.task(name="square")
    async def square(x: int) -> int:
        return x * x

    @app.task(name="refuse")
    def refuse() -> None:
        raise pgqueue.Discard("no")

    with running_worker(app):
        assert square.enqueue(7).wait(timeout=10) == 49
        assert asyncio.run(square.enqueue(8).wait_async(timeout=10)) == 64
        with pytest.raises(pgqueue.JobFailed, match="dead"):
            refuse.enqueue().wait(timeout=10)


def test_worker_row_worker_id_and_log_lines(
    app: pgqueue.App, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="pgqueue.worker")

    @app.task(name="seen")
    def seen() -> str:
        return "ok"

    with running_worker(app, concurrency=3) as worker:
        live = _rows(app, "SELECT id, pid, queues, concurrency FROM pgqueue.live_workers")
        assert [(r[0], r[2], r[3]) for r in live] == [(worker.worker_id, ["default"], 3)]
        j = seen.enqueue()
        j.wait(timeout=10)
    assert job(app, j.id).worker_id == worker.worker_id
    assert _rows(app, "SELECT * FROM pgqueue.workers") == []  # deregistered on stop
    lines = [r.getMessage() for r in caplog.records if r.name == "pgqueue.worker"]
    start = next(line for line in lines if line.startswith("event=start "))
    success = next(line for line in lines if line.startswith("event=success "))
    assert f"job={j.id} task=seen queue=default attempt=1" in start
    assert f"job={j.id} task=seen queue=default attempt=1 duration=" in success
    assert any(line.startswith("event=claim ") and f"jobs={j.id}" in line for line in lines)


def test_heartbeat_keeps_the_lease_while_the_event_loop_is_blocked(clean_db: str) -> None:
    app = pgqueue.App(clean_db, lease=1.0)

    @app.task(name="hog")
    async def hog() -> str:
        time.sleep(2.5)  # blocks the event loop: the heartbeat thread must carry on
        return "done"

    j = hog.enqueue()
    try:
        assert drain(app, rescue_interval=0.1) == 0
        j = job(app, j.id)
        assert (j.status, j.attempts, j.errors) == ("succeeded", 1, [])
    finally:
        app.close()


def _rows(app: pgqueue.App, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(app.dsn, autocommit=True) as conn:
        return conn.execute(sql).fetchall()


def test_cancel_requested_stops_a_running_async_job(app: pgqueue.App) -> None:
    started = threading.Event()

    @app.task(name="endless")
    async def endless() -> None:
        started.set()
        await asyncio.sleep(60)

    with running_worker(app, heartbeat_interval=0.1):
        j = endless.enqueue()
        assert started.wait(10)
        assert app.cancel_jobs([j.id]) == {"cancelled": [], "requested": [j.id]}
        with pytest.raises(pgqueue.JobFailed, match="cancelled"):
            j.wait(timeout=10)
    assert job(app, j.id).last_error == "JobCancelled: cancellation requested"


def test_worker_runs_the_cron_scheduler_unless_told_not_to(app: pgqueue.App) -> None:
    @app.cron("* * * * * *", name="every-second")
    @app.task(name="tick")
    def tick() -> str:
        return "tick"

    with running_worker(app, scheduler=False):
        time.sleep(1.5)
    assert _rows(app, "SELECT count(*) FROM pgqueue.jobs") == [(0,)]
    with running_worker(app):
        wait_until(lambda: _rows(app, "SELECT count(*) FROM pgqueue.jobs WHERE status = "
                                      "'succeeded' AND task = 'tick'")[0][0] >= 1)  # fmt: skip


def test_prometheus_metrics(app: pgqueue.App) -> None:
    import socket
    import urllib.request

    @app.task(name="measured")
    def measured() -> None:
        return None

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with running_worker(app, metrics_port=port, concurrency=4):
        measured.enqueue().wait(timeout=10)
        time.sleep(1.1)  # the slot gauges refresh once a second
        url = f"http://127.0.0.1:{port}/metrics"
        text = urllib.request.urlopen(url, timeout=5).read().decode()
    assert 'pgqueue_jobs_total{outcome="succeeded",task="measured"} 1.0' in text
    assert 'pgqueue_worker_slots{state="total"} 4.0' in text
