"""Durable workflows in one process: replay, checkpoints, sleep, events, determinism, cancel.

The tests with real worker processes (SIGKILL, restarts) are in
``test_workflow_processes.py``; the workflows themselves in ``workflow_app.py``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from typing import Any

import psycopg
import pytest
import workflow_app as wf
from test_worker import running_worker
from test_worker_app import scalar, wait_until
from workflow_app import app_fixture  # noqa: F401  (the `app` fixture)

import pgqueue
from pgqueue import _workflows
from pgqueue._context import JobContext
from pgqueue._replay import WorkflowRun
from pgqueue._sql import query
from pgqueue.cli._base import run
from pgqueue.maintenance import Pruner

FAST = {"poll_interval": 0.1, "rescue_interval": 0.2}


def drain(app: pgqueue.App) -> int:
    return app.run_worker(None, until_empty=True, **FAST)


def kinds(handle: pgqueue.WorkflowHandle) -> list[tuple[int, str, str]]:
    return [(s.seq, s.kind, s.name) for s in handle.steps()]


def test_a_sleeping_workflow_replays_its_log_and_counts_one_attempt(
    app: pgqueue.App, clean_db: str
) -> None:
    handle = wf.napper.start("k1", 0.3)
    assert handle.status() == "queued"
    assert drain(app) == 0
    assert handle.wait(timeout=10) == {"slept": pytest.approx(0.3, abs=10), "b": "b"}
    assert handle.wait(timeout=1)["slept"] >= 0.3  # now() was checkpointed before the sleep
    assert kinds(handle) == [
        (0, "workflow", "wf.napper"), (1, "now", "pgqueue.now"), (2, "step", "wf.step_a"),
        (3, "sleep", "pgqueue.sleep"), (4, "now", "pgqueue.now"), (5, "step", "wf.step_b"),
    ]  # fmt: skip
    assert wf.runs(clean_db, "a", "k1") == 1  # replayed after the sleep, not run again
    job = app.get_job(handle.id)
    assert (job.status, job.attempts) == ("succeeded", 1)  # the suspension is not an attempt


def test_an_async_workflow_awaits_sync_steps_and_checkpointed_values(
    app: pgqueue.App, clean_db: str
) -> None:
    handle = wf.anapper.start("k2", 0.2)
    drain(app)
    result = handle.wait(timeout=10)
    assert result["slept"] >= 0.2 and 0 <= result["r"] < 1
    assert [k for _, k, _ in kinds(handle)] == ["workflow", "now", "step", "sleep", "now", "random"]
    assert wf.runs(clean_db, "a", "k2") == 1


def test_a_workflow_waiting_for_an_event_holds_no_slot_and_runs_on_send(
    app: pgqueue.App, clean_db: str
) -> None:
    with running_worker(app, concurrency=1) as worker:
        handle = wf.waiter.start("k3", 60)
        wait_until(lambda: [s.kind for s in handle.steps()][-1:] == ["event"])
        wait_until(lambda: handle.status() == "queued")
        assert worker.running == {}  # the worker is idle: the wait holds no slot
        other = wf.double.enqueue(21)  # and the single slot serves other work meanwhile
        assert other.wait(timeout=10) == 42
        with psycopg.connect(clean_db) as conn:  # inside the sender's transaction
            app.send_event(handle.id, "go", {"n": 1}, connection=conn)
            conn.rollback()  # rolled back: no event, no wake-up
        assert scalar(clean_db, "SELECT count(*) FROM pgqueue.workflow_events") == 0
        assert handle.status() == "queued"
        handle.send_event("go", {"n": 2})
        assert handle.wait(timeout=10) == {"got": {"n": 2}, "a": "a"}
    event = handle.steps()[1]
    assert (event.kind, event.event, event.result) == ("event", "go", {"n": 2})
    assert scalar(clean_db, "SELECT consumed_by FROM pgqueue.workflow_events") == 1
    assert app.get_job(handle.id).attempts == 1


def test_an_event_sent_before_the_wait_is_consumed_at_once(app: pgqueue.App) -> None:
    handle = wf.waiter.start("k4", 60)
    app.send_event(handle.id, "go", "early")
    drain(app)
    assert handle.wait(timeout=10) == {"got": "early", "a": "a"}


def test_an_event_timeout_takes_the_timeout_branch(app: pgqueue.App, clean_db: str) -> None:
    handle = wf.waiter.start("k5", 0.3)
    drain(app)
    assert handle.wait(timeout=10) == {"timeout": True, "b": "b"}
    assert wf.runs(clean_db, "a", "k5") == 0
    app.send_event(handle.id, "go", "late")  # a late event is kept, never consumed
    assert scalar(clean_db, "SELECT consumed_at FROM pgqueue.workflow_events") is None


def test_an_async_workflow_waits_for_an_event(app: pgqueue.App) -> None:
    with running_worker(app):
        handle = wf.await_waiter.start("k6")
        wait_until(lambda: [s.kind for s in handle.steps()][-1:] == ["event"])
        app.send_event(handle.id, "go", [1, 2])
        assert handle.wait(timeout=10) == [1, 2]


def test_a_non_deterministic_replay_ends_dead_naming_both_steps(app: pgqueue.App) -> None:
    wf.FICKLE["k7"] = True
    with running_worker(app):
        handle = wf.fickle.start("k7")
        wait_until(lambda: [s.kind for s in handle.steps()][-1:] == ["sleep"])
        wf.FICKLE["k7"] = False  # the replay after the sleep calls another step first
        with pytest.raises(pgqueue.JobFailed):
            handle.wait(timeout=10)
    job = app.get_job(handle.id)
    assert job.status == "dead"
    assert "NonDeterministicWorkflow" in (job.last_error or "")
    assert "'wf.step_a'" in (job.last_error or "") and "'wf.step_b'" in (job.last_error or "")
    assert "step 1" in (job.last_error or "")


def test_step_retries_then_a_recorded_failure(app: pgqueue.App, clean_db: str) -> None:
    ok = wf.retrying.start("k8", 2)  # fails twice, succeeds on its third attempt
    bad = wf.retrying.start("k9", 5)  # fails all three
    drain(app)
    assert ok.wait(timeout=10) == 3
    assert bad.wait(timeout=10) == {"failed": "RuntimeError: flaky run 3", "b": "b"}
    step = bad.steps()[1]
    assert (step.attempts, step.error, step.result) == (3, "RuntimeError: flaky run 3", None)
    assert ok.steps()[1].attempts == 3


def test_cancel_a_waiting_and_a_running_workflow(app: pgqueue.App, clean_db: str) -> None:
    with running_worker(app):
        waiting = wf.waiter.start("k10", 60)
        running = wf.cancellable.start("k11", 1.0)
        wait_until(lambda: [s.kind for s in waiting.steps()][-1:] == ["event"])
        wait_until(lambda: wf.runs(clean_db, "slow", "k11") == 1)
        waiting.cancel()
        running.cancel()
        assert waiting.status() == "cancelled"
        wait_until(lambda: running.status() == "cancelled")
    assert wf.runs(clean_db, "b", "k11") == 0  # no step ran after the cancel
    assert [w.id for w in app.list_workflows(status="cancelled")] == [running.id, waiting.id]


def test_run_task_waits_for_child_jobs_and_child_workflows(
    app: pgqueue.App, clean_db: str
) -> None:
    handle = wf.parent.start(5)
    drain(app)
    result = handle.wait(timeout=10)
    assert (result["doubled"], result["plus"]) == (10, 11)
    failed = result["failed"]
    assert failed.startswith("child job") and "ended dead: ValueError: boom" in failed
    steps = handle.steps()
    assert [s.kind for s in steps] == ["workflow", "child", "child", "child"]
    assert all(s.child_id for s in steps[1:])
    child = app.get_job(steps[2].child_id)
    assert (child.task, child.status, child.result) == ("wf.child", "succeeded", 11)
    assert wf.runs(clean_db, "double", "5") == 1
    assert app.get_job(handle.id).attempts == 1


def test_an_async_workflow_runs_a_task(app: pgqueue.App) -> None:
    handle = wf.aparent.start(4)
    drain(app)
    assert handle.wait(timeout=10) == 8


# -- the race between a suspension and send_event ------------------------------------------


def _claimed(dsn: str, workflow: pgqueue.WorkflowHandle) -> str:
    """Claim the workflow's job as a worker would; returns the lease token."""
    token = str(uuid.uuid4())
    assert workflow.job is not None
    params = {"queues": [workflow.job.queue], "limit": 1, "lease": 30.0, "worker_id": "t",
              "token": token}  # fmt: skip
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute(query("claim"), params).fetchall()[0][0] == workflow.id
    return token


def _blocked_on_a_lock(dsn: str) -> bool:
    sql = ("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
           " AND wait_event_type = 'Lock'")  # fmt: skip
    return bool(scalar(dsn, sql))


def test_send_event_during_a_suspension_wakes_the_workflow(
    app: pgqueue.App, clean_db: str
) -> None:
    # The worker has looked for the event and found none; send_event comes in before
    # its suspension commits: it waits for the row lock, then sees the suspension.
    handle = wf.waiter.start("r1", 3600)
    token = _claimed(clean_db, handle)
    op = _workflows.wait(handle.id, token, 1, "pgqueue.wait_for_event:go", "event",
                         seconds=3600, event="go")  # fmt: skip
    sender = threading.Thread(target=app.send_event, args=(handle.id, "go", "now"))
    with psycopg.connect(clean_db) as conn:
        stmt = next(op)
        while True:
            if stmt.sql == query("workflow_suspend"):
                sender.start()
                wait_until(lambda: _blocked_on_a_lock(clean_db))
            cur = conn.execute(stmt.sql, stmt.params)
            rows = cur.fetchall() if cur.description is not None else []
            try:
                stmt = op.send(rows)
            except StopIteration as stop:
                waited = stop.value
                break
        conn.commit()
    sender.join(10)
    assert waited.state == "suspended"  # no event in its snapshot...
    due = scalar(clean_db, "SELECT run_at <= now() FROM pgqueue.jobs WHERE id = %s", (handle.id,))
    assert due  # ...but send_event, after the lock, saw it waiting and made it due now
    drain(app)
    assert handle.wait(timeout=10) == {"got": "now", "a": "a"}


def test_a_suspension_during_send_event_sees_the_event(app: pgqueue.App, clean_db: str) -> None:
    # send_event holds the row lock in the sender's open transaction; the worker's
    # suspension waits for it, then finds the event instead of suspending.
    handle = wf.waiter.start("r2", 3600)
    token = _claimed(clean_db, handle)
    results: list[Any] = []
    op = _workflows.wait(handle.id, token, 1, "pgqueue.wait_for_event:go", "event",
                         seconds=3600, event="go")  # fmt: skip
    with psycopg.connect(clean_db) as conn:
        app.send_event(handle.id, "go", "first", connection=conn)
        worker = threading.Thread(
            target=lambda: results.append(app.database.run(op, transaction=True)))
        worker.start()
        wait_until(lambda: _blocked_on_a_lock(clean_db))
        conn.commit()
    worker.join(10)
    assert results[0].state == "done" and results[0].result == '"first"'
    status = scalar(clean_db, "SELECT status FROM pgqueue.jobs WHERE id = %s", (handle.id,))
    assert status == "running"  # still this attempt's: it goes on with the event


def test_a_worker_that_lost_the_lease_records_no_step(app: pgqueue.App, clean_db: str) -> None:
    handle = wf.fulfil_order.start("z1")
    stale = _claimed(clean_db, handle)
    with psycopg.connect(clean_db, autocommit=True) as conn:  # rescued and claimed again
        conn.execute("UPDATE pgqueue.jobs SET lease_token = gen_random_uuid() WHERE id = %s",
                     (handle.id,))  # fmt: skip
    ctx = JobContext(app.database, id=handle.id, task=wf.fulfil_order.name, queue="orders",
                     attempt=1, max_attempts=3, token=stale, meta={})  # fmt: skip
    run = WorkflowRun(app.database, ctx, {}, is_async=False)
    with pytest.raises(pgqueue._errors.Suspended, match="fenced"):
        run.step(wf.charge_payment, ("z1",), {})  # ran (at least once), not recorded
    with pytest.raises(pgqueue._errors.Suspended, match="fenced"):
        run.step(wf.reserve_inventory, ("z1", 0.0), {})  # its write rolled back with it
    assert scalar(clean_db, "SELECT count(*) FROM public.wf_inventory") == 0
    assert [s.seq for s in handle.steps()] == []


def test_the_step_log_lives_as_long_as_the_workflow_job(app: pgqueue.App, clean_db: str) -> None:
    handle = wf.napper.start("p1", 0.0)
    drain(app)
    assert handle.wait(timeout=10)["b"] == "b"
    assert len(handle.steps()) == 6
    assert app.purge(statuses=["succeeded"]) >= 1  # the pruner deletes the same way
    assert handle.steps() == []
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.workflow_steps") == 0


def test_workflow_calls_outside_a_workflow() -> None:
    assert wf.step_a.fn is not None
    with pytest.raises(RuntimeError, match="only available inside a workflow"):
        pgqueue.sleep(1)
    with pytest.raises(RuntimeError, match="only available inside a workflow"):
        pgqueue.wait_for_event("x", timeout=1)
    assert 0 <= pgqueue.random() < 1
    with pytest.raises(ValueError, match="seconds"):
        pgqueue.sleep(-1)
    with pytest.raises(TypeError, match="JSON"):
        wf.app.send_event(1, "go", {1, 2})


def test_cli_lists_workflows_and_shows_a_step_log(
    app: pgqueue.App, clean_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    done = wf.retrying.start("c1", 5)
    waiting = wf.waiter.start("c2", 3600)
    with running_worker(app):
        done.wait(timeout=10)
        wait_until(lambda: [s.kind for s in waiting.steps()][-1:] == ["event"])
    capsys.readouterr()
    assert run(["workflows", "list", "--dsn", clean_db]) == 0
    out = capsys.readouterr().out
    assert "wf.retrying" in out and "wf.waiter" in out
    assert run(["workflows", "show", str(done.id), "--dsn", clean_db]) == 0
    out = capsys.readouterr().out
    assert "wf.flaky" in out and "error: RuntimeError: flaky run 3" in out
    assert "result: \"b\"" in out
    assert run(["workflows", "show", str(waiting.id), "--dsn", clean_db]) == 0
    assert "waiting for event 'go' until" in capsys.readouterr().out
    assert run(["workflows", "show", str(waiting.id), "--json", "--dsn", clean_db]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [s["kind"] for s in shown["steps"]] == ["workflow", "event"]
    assert run(["workflows", "show", "999", "--dsn", clean_db]) != 0
    assert "999" in capsys.readouterr().err


def test_start_joins_the_callers_transaction(app: pgqueue.App, clean_db: str) -> None:
    with psycopg.connect(clean_db) as conn:
        handle = wf.napper.start("t1", 0.0, connection=conn)
        conn.rollback()
    with pytest.raises(pgqueue.JobNotFound):
        app.get_workflow(handle.id)
    with psycopg.connect(clean_db) as conn:
        handle = wf.napper.start("t2", 0.0, connection=conn)
    assert app.get_workflow(handle.id).status() == "queued"


def test_declarations_are_checked(app: pgqueue.App) -> None:
    with pytest.raises(pgqueue.ConfigurationError, match="must take a `connection`"):
        app.step(transactional=True)(lambda order_id: None)
    with pytest.raises(ValueError, match="max_attempts must be >= 1"):
        app.step(max_attempts=0)(lambda: None)
    with pytest.raises(pgqueue.ConfigurationError, match="transactional"):
        app.workflow(name="wf.bad", transactional=True)(lambda: None)
    assert "wf.fulfil_order" in app.registry.workflows()
    assert isinstance(wf.fulfil_order, pgqueue.Workflow) and isinstance(wf.fulfil_order,
                                                                         pgqueue.Task)
    assert wf.charge_payment("o-1") == "ch-o-1"  # outside a workflow: a plain call


def test_the_pruner_deletes_a_workflows_log_with_its_job(
    app: pgqueue.App, clean_db: str
) -> None:
    done = wf.napper.start("p2", 0.0)
    waiting = wf.waiter.start("p3", 3600)
    with running_worker(app):
        done.wait(timeout=10)
        wait_until(lambda: [s.kind for s in waiting.steps()][-1:] == ["event"])
    app.send_event(waiting.id, "go", None)  # an event for a workflow that stays unfinished
    pruner = Pruner(app.database, retention=0.0, interval=60)
    try:
        assert pruner.run_once() == 1
    finally:
        pruner.stop()
    assert done.steps() == []
    assert len(waiting.steps()) == 2  # unfinished: kept, with its event
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.workflow_events") == 1


def test_step_timeouts(app: pgqueue.App) -> None:
    handle = wf.timeouts.start()
    drain(app)
    assert handle.wait(timeout=10) == ["QueryCanceled", "StepTimeout"]


def test_the_async_twins(app: pgqueue.App) -> None:
    async def main() -> None:
        handle = await wf.await_waiter.start_async("a1")
        assert await handle.status_async() == "queued"
        await app.send_event_async(handle.id, "go", "early")  # kept until the wait
        again = await app.get_workflow_async(handle.id)
        other = await wf.waiter.start_async("a2", 3600)
        await other.cancel_async()
        assert [j.id for j in await app.list_workflows_async(status="cancelled")] == [other.id]
        worker = asyncio.create_task(app.run_worker_async(None, until_empty=True, **FAST))
        assert await again.wait_async(timeout=10) == "early"
        await worker
        assert [s.kind for s in await handle.steps_async()] == ["workflow", "event"]
        await app.close_async()

    asyncio.run(main())
