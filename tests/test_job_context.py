"""Inside a task: current_job(), progress reports, a sync task honouring cancellation."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from test_worker import app, drain, running_worker  # noqa: F401  (fixture and helpers)

import pgqueue
from pgqueue import testing


def test_current_job_outside_a_task_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="inside a running task"):
        pgqueue.current_job()


def test_tasks_see_their_job_and_report_progress(app: pgqueue.App) -> None:  # noqa: F811
    seen: dict[str, Any] = {}

    @app.task(name="ctx.sync")
    def sync_task() -> None:
        ctx = pgqueue.current_job()
        seen["sync"] = (ctx.id, ctx.task, ctx.attempt, ctx.meta)
        assert ctx.set_progress({"done": 1, "of": 2}) is True

    @app.task(name="ctx.async")
    async def async_task() -> None:
        ctx = pgqueue.current_job()
        seen["async"] = (ctx.id, ctx.task, ctx.attempt)
        assert await ctx.set_progress_async([1, 2, 3]) is True

    a = sync_task.options(meta={"scheduled_for": "2026-12-01T00:00:00+00:00"}).enqueue()
    b = async_task.enqueue()
    assert testing.drain(app) == 2
    assert seen["sync"] == (a.id, "ctx.sync", 1, {"scheduled_for": "2026-12-01T00:00:00+00:00"})
    assert seen["async"] == (b.id, "ctx.async", 1)
    assert app.get_job(a.id).progress == {"done": 1, "of": 2}
    assert app.get_job(b.id).progress == [1, 2, 3]


def test_a_sync_task_checks_the_cancel_flag(app: pgqueue.App) -> None:  # noqa: F811
    started = threading.Event()
    progress_saw_cancel: list[bool] = []

    @app.task(name="ctx.loop")
    def loop() -> str:
        ctx = pgqueue.current_job()
        started.set()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ctx.set_progress({"at": time.monotonic()})
            if ctx.cancel_requested:
                progress_saw_cancel.append(True)
                ctx.raise_if_cancelled()
            time.sleep(0.05)
        return "ran to the end"

    with running_worker(app, heartbeat_interval=0.1):
        j = loop.enqueue()
        assert started.wait(10)
        assert app.cancel_jobs([j.id])["requested"] == [j.id]
        with pytest.raises(pgqueue.JobFailed, match="cancelled"):
            j.wait(timeout=15)
    final = app.get_job(j.id)
    assert final.status == "cancelled"
    assert final.last_error == "JobCancelled: cancellation requested"
    assert progress_saw_cancel == [True]


def test_a_worker_prunes_finished_jobs_past_retention(app: pgqueue.App) -> None:  # noqa: F811
    import psycopg

    t = app.task_ref("ctx.unknown")
    old, recent = (j.id for j in app.enqueue_many([t.job(), t.job()]))
    with psycopg.connect(app.dsn) as conn:
        conn.execute(
            "UPDATE pgqueue.jobs SET status = 'succeeded', finished_at = now() - %s * interval"
            " '1 hour' WHERE id = %s",
            (3, old),
        )
        conn.execute(
            "UPDATE pgqueue.jobs SET status = 'succeeded', finished_at = now() WHERE id = %s",
            (recent,),
        )
    with running_worker(app, retention=3600.0):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(app.list_jobs()) > 1:
            time.sleep(0.05)
    assert [j.id for j in app.list_jobs()] == [recent]
