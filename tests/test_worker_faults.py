"""Faults the worker must survive: odd exceptions, shutdown with no attempt left, cancels, bugs."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from test_worker import FAST, running_worker
from test_worker_app import executions, prepare_tables, wait_until, worker_process

import pgqueue
from pgqueue._sql import query
from pgqueue.worker import Worker, WorkerConfig
from pgqueue.worker._claimed import Claimed
from pgqueue.worker._heartbeat import Heartbeat


@pytest.fixture
def app(clean_db: str) -> Iterator[pgqueue.App]:
    app = pgqueue.App(clean_db, lease=5, retry=pgqueue.RetryPolicy(base=0.02, cap=0.05))
    yield app
    app.close()


def _row(dsn: str, sql: str, *params: Any) -> tuple[Any, ...]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(sql, params).fetchone()
    assert row is not None
    return row


def _drain_one_slot(app: pgqueue.App) -> list[int]:
    """A burst worker with one slot, on a thread (a lost slot would hang it: time out)."""
    codes: list[int] = []
    thread = threading.Thread(
        target=lambda: codes.append(app.run_worker(until_empty=True, concurrency=1, **FAST)),
        daemon=True,
    )
    thread.start()
    thread.join(30)
    return codes


class Unprintable(Exception):
    def __str__(self) -> str:
        return str(1 / 0)


def test_an_exception_whose_str_raises_fails_the_attempt_and_frees_the_slot(
    app: pgqueue.App,
) -> None:
    @app.task(name="odd", max_attempts=1)
    def odd() -> None:
        raise Unprintable()

    @app.task(name="fine")
    def fine() -> str:
        return "ok"

    bad, good = odd.enqueue(), fine.enqueue()
    # One slot: the second job runs only if the first one's thread gave it back.
    assert _drain_one_slot(app) == [0]
    status, error = _row(app.dsn, "SELECT status, last_error FROM pgqueue.jobs WHERE id = %s",
                         bad.id)  # fmt: skip
    assert status == "dead"
    assert error.startswith("Unprintable: <str() raised ZeroDivisionError; Unprintable()>")
    assert app.get_job(good.id).status == "succeeded"


def test_a_malformed_retry_request_fails_the_attempt_and_frees_the_slot(
    app: pgqueue.App,
) -> None:
    @app.task(name="confused", max_attempts=2)
    def confused() -> None:
        raise pgqueue.Retry(delay="soon")  # type: ignore[arg-type]

    @app.task(name="fine")
    def fine() -> str:
        return "ok"

    bad, good = confused.enqueue(), fine.enqueue()
    assert _drain_one_slot(app) == [0]
    # The first attempt failed (with the default backoff), the second went dead.
    assert _row(app.dsn, "SELECT status, attempts FROM pgqueue.jobs WHERE id = %s",
                bad.id) == ("dead", 2)  # fmt: skip
    assert app.get_job(good.id).status == "succeeded"


def test_release_at_shutdown_sends_a_job_with_no_attempt_left_to_dead(clean_db: str) -> None:
    prepare_tables(clean_db)
    app = pgqueue.App(clean_db)
    last = app.task_ref("t.sleep").options(max_attempts=1).enqueue(1, 60)
    more = app.task_ref("t.sleep").options(max_attempts=2).enqueue(2, 60)
    with worker_process(clean_db, "--shutdown-grace", "0.3", "--concurrency", "2") as worker:
        wait_until(lambda: executions(clean_db) == 2)
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 1
        log = worker.output()
    sql = "SELECT status, attempts, last_error, jsonb_array_length(errors) FROM pgqueue.jobs"
    status, attempts, error, errors = _row(clean_db, sql + " WHERE id = %s", last.id)
    assert (status, attempts, errors) == ("dead", 1, 1)
    assert "stopped before the attempt ended" in error
    assert _row(clean_db, sql + " WHERE id = %s", more.id)[:2] == ("queued", 1)
    assert f"dead={last.id}" in log
    app.close()


def test_cancelling_a_running_job_reaches_its_worker_at_once(app: pgqueue.App) -> None:
    started = threading.Event()
    flag_seen = threading.Event()

    @app.task(name="endless")
    async def endless() -> None:
        started.set()
        await asyncio.sleep(60)

    @app.task(name="polling")
    def polling() -> None:
        started.set()
        ctx = pgqueue.current_job()
        deadline = time.monotonic() + 60
        while not ctx.cancel_requested and time.monotonic() < deadline:
            time.sleep(0.005)
        flag_seen.set()
        ctx.raise_if_cancelled()

    # Heartbeats a minute apart: only the notification can carry the request in time.
    with running_worker(app, heartbeat_interval=60):
        for task in (endless, polling):
            started.clear()
            j = task.enqueue()
            assert started.wait(10)
            assert app.cancel_jobs([j.id]) == {"cancelled": [], "requested": [j.id]}
            with pytest.raises(pgqueue.JobFailed, match="cancelled"):
                j.wait(timeout=5)
    assert flag_seen.is_set()


def test_a_recorded_outcome_is_not_reported_as_a_lost_lease(app: pgqueue.App) -> None:
    token = str(uuid.uuid4())
    with psycopg.connect(app.dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO pgqueue.jobs (task) SELECT 't' FROM generate_series(1, 2)")
        params = {"queues": ["default"], "limit": 2, "lease": 30.0, "worker_id": "w",
                  "token": token}  # fmt: skip
        done, relet = sorted(r[0] for r in conn.execute(query("claim"), params).fetchall())
        # `done` was recorded by the completer (it keeps its token), `relet` re-claimed.
        conn.execute("UPDATE pgqueue.jobs SET status = 'succeeded' WHERE id = %s", (done,))
        conn.execute("UPDATE pgqueue.jobs SET lease_token = gen_random_uuid() WHERE id = %s",
                     (relet,))  # fmt: skip
    lost: list[list[int]] = []
    # The completer has not cleared its in-flight batch yet: `done` is still held.
    held = [(done, token, 30.0), (relet, token, 30.0)]
    beat = Heartbeat(app.database, worker_id="w", queues=["default"], concurrency=2, interval=60,
                     held=lambda: held, on_lost=lost.append, on_cancel=print)  # fmt: skip
    beat.beat()
    beat.stop()
    assert lost == [[relet]]


class FailingClaim(Worker):
    """A worker whose claim loop hits a bug."""

    async def _claim(self, limit: int) -> list[Claimed]:
        raise RuntimeError("a bug in the claim loop")


def test_a_failing_claim_loop_stops_cleanly_and_logs_the_code_it_returns(
    app: pgqueue.App, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pgqueue.worker")
    config = WorkerConfig(install_signal_handlers=False, until_empty=True, **FAST)
    worker = FailingClaim(app.database, app.registry, config)
    assert worker.run() == 1
    assert "event=worker_failed" in caplog.text
    stop = [r.getMessage() for r in caplog.records if "event=worker_stop " in r.getMessage()]
    assert len(stop) == 1 and "exit_code=1" in stop[0]
    assert _row(app.dsn, "SELECT count(*) FROM pgqueue.workers") == (0,)  # deregistered
