"""Durable workflows in one process: replay, checkpoints, sleep, events, determinism, cancel.

The tests with real worker processes (SIGKILL, restarts) are in
``test_workflow_processes.py``; the workflows themselves in ``workflow_app.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
import workflow_app as wf
from test_worker_app import scalar, wait_until

import pgqueue
from pgqueue.worker import Worker, WorkerConfig

FAST = {"poll_interval": 0.1, "rescue_interval": 0.2}


@pytest.fixture
def app(clean_db: str) -> Iterator[pgqueue.App]:
    wf.prepare(clean_db)
    wf.app.use_dsn(clean_db)
    yield wf.app
    wf.app.close()


def drain(app: pgqueue.App) -> int:
    return app.run_worker(None, until_empty=True, **FAST)


@contextmanager
def running_worker(app: pgqueue.App, **options: Any) -> Iterator[Worker]:
    config = WorkerConfig(install_signal_handlers=False, **{**FAST, **options})
    worker = Worker(app.database, app.registry, config)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    wait_until(lambda: worker.heartbeat is not None and worker.heartbeat.beats > 0)
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(30)
        assert not thread.is_alive()


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
