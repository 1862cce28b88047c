"""A worker killed (SIGKILL) in the middle of a flow: the rescuer takes the step back,
the flow completes, and no step runs after a dead parent unless it declared so."""

from __future__ import annotations

import signal

import pytest
from test_worker_app import executions, prepare_tables, scalar, wait_until, worker_process

import pgqueue
from pgqueue import chain

LEASE = 1.0  # seconds: the killed worker's jobs come back quickly


@pytest.fixture
def dsn(clean_db: str) -> str:
    prepare_tables(clean_db)
    return clean_db


def test_a_flow_survives_a_killed_worker(dsn: str) -> None:
    app = pgqueue.App(dsn)
    record, sleep_once = app.task_ref("t.record"), app.task_ref("t.sleep_once")

    def step(task: pgqueue.Task[..., object], *args: object, **options: object) -> pgqueue.JobSpec:
        return task.options(pass_result=False, **options).job(*args)  # type: ignore[arg-type]

    # Retried after the kill: step 2 runs again (at least once), step 3 after it.
    survives = app.enqueue_flow(chain(step(record, 1), step(sleep_once, 2, 60), step(record, 3)))
    # No attempt left after the kill: step 12 never runs, the cleanup step does.
    dies = app.enqueue_flow(chain(
        step(record, 10), step(sleep_once, 11, 60, max_attempts=1), step(record, 12),
        step(record, 13, on_parent_failure="run"),
    ))  # fmt: skip

    with worker_process(dsn, "--concurrency", "4", "--no-rescue", lease=LEASE) as first:
        wait_until(lambda: executions(dsn, 2) == 1 and executions(dsn, 11) == 1)
        first.signal(signal.SIGKILL)
        assert first.wait() == -signal.SIGKILL
    assert executions(dsn, 3) == 0 and executions(dsn, 12) == 0

    args = ("--burst", "--rescue-interval", "0.2", "--poll-interval", "0.2")
    with worker_process(dsn, *args, lease=LEASE) as second:
        assert second.wait(30) == 0, second.output()

    assert survives.status() == "succeeded"
    assert [executions(dsn, k) for k in (1, 2, 3)] == [1, 2, 1]
    after = "SELECT min(at) FROM public.executions WHERE key = %s"
    last_run = "SELECT max(at) FROM public.executions WHERE key = %s"
    assert scalar(dsn, after, (3,)) > scalar(dsn, last_run, (2,))  # in order, after the rerun

    jobs = dies.refresh().jobs
    assert [j.status for j in jobs] == ["succeeded", "dead", "cancelled", "succeeded"]
    assert jobs[1].last_error.startswith("lease expired")
    assert [executions(dsn, k) for k in (10, 11, 12, 13)] == [1, 1, 0, 1]
    with pytest.raises(pgqueue.JobFailed, match=r"\(t.sleep_once\) ended dead"):
        dies.wait(timeout=5)
    app.close()
