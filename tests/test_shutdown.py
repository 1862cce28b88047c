"""Graceful shutdown: SIGTERM drains, a second SIGTERM (or the grace period) releases."""

from __future__ import annotations

import signal
import time

import pytest
from test_worker_app import executions, prepare_tables, scalar, wait_until, worker_process

import pgqueue
from pgqueue.worker import Worker, WorkerConfig
from pgqueue.worker._claimed import Claimed


@pytest.fixture
def dsn(clean_db: str) -> str:
    prepare_tables(clean_db)
    return clean_db


def statuses(dsn: str) -> list[tuple[int, str, int]]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT id, status, attempts FROM pgqueue.jobs ORDER BY id")
        return [(r[0], r[1], r[2]) for r in rows]


def test_sigterm_finishes_running_jobs_claims_no_more_and_exits_0(dsn: str) -> None:
    app = pgqueue.App(dsn)
    for i in range(4):
        app.task_ref("t.sleep").enqueue(i, 1.0)
    with worker_process(dsn, "--concurrency", "2") as worker:
        wait_until(lambda: executions(dsn) == 2)
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0
        log = worker.output()
    assert "event=signal signal=SIGTERM action=graceful_stop" in log
    done = statuses(dsn)
    assert sorted(s for _, s, _ in done) == ["queued", "queued", "succeeded", "succeeded"]
    assert all(attempts == 0 for _, s, attempts in done if s == "queued")
    assert executions(dsn) == 2
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.workers") == 0  # deregistered
    app.close()


def test_second_sigterm_aborts_and_releases_running_jobs(dsn: str) -> None:
    app = pgqueue.App(dsn)
    for i in range(2):
        app.task_ref("t.sleep").enqueue(i, 60)
    with worker_process(dsn, "--concurrency", "2") as worker:
        wait_until(lambda: executions(dsn) == 2)
        worker.signal(signal.SIGTERM)
        wait_until(lambda: "event=worker_stopping" in worker.output())
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 1
        assert "action=abort" in worker.output()
    # Released at once, the attempt counted: another worker may take them now.
    assert [(s, a) for _, s, a in statuses(dsn)] == [("queued", 1), ("queued", 1)]
    app.close()


def test_grace_period_expiry_releases_running_jobs(dsn: str) -> None:
    app = pgqueue.App(dsn)
    app.task_ref("t.sleep").enqueue(1, 60)
    with worker_process(dsn, "--shutdown-grace", "0.5") as worker:
        wait_until(lambda: executions(dsn) == 1)
        started = time.monotonic()
        worker.signal(signal.SIGINT)  # Ctrl-C: same as SIGTERM
        assert worker.wait() == 1
        assert time.monotonic() - started < 10
    assert [(s, a) for _, s, a in statuses(dsn)] == [("queued", 1)]
    app.close()


class StopDuringClaim(Worker):
    """A worker whose stop request arrives while its claim is in flight."""

    async def _claim(self, limit: int) -> list[Claimed]:
        jobs = await super()._claim(limit)
        self.stop()
        return jobs


def test_claimed_but_unstarted_jobs_are_released_without_an_attempt(dsn: str) -> None:
    app = pgqueue.App(dsn)
    ran: list[int] = []

    @app.task(name="never")
    def never(n: int) -> None:
        ran.append(n)

    for i in range(3):
        never.enqueue(i)
    config = WorkerConfig(install_signal_handlers=False)
    worker = StopDuringClaim(app.database, app.registry, config)
    assert worker.run() == 0
    assert worker.claimed == 3 and ran == []
    assert [(s, a) for _, s, a in statuses(dsn)] == [("queued", 0)] * 3
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE worker_id IS NOT NULL") == 0
    app.close()
