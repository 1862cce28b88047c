"""One /metrics endpoint for a supervisor: counters sum over every child, recycled ones too."""

from __future__ import annotations

import os
import re
import signal
import urllib.request

import pytest
from test_metrics import free_port
from test_worker_app import executions, prepare_tables, scalar, wait_until, worker_process

import pgqueue


@pytest.fixture
def dsn(clean_db: str) -> str:
    prepare_tables(clean_db)
    return clean_db


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return str(resp.read().decode())


def sample(text: str, name: str) -> float | None:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return None if match is None else float(match.group(1))


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_supervisor_serves_the_sum_of_all_children_recycled_ones_included(
    dsn: str, start_method: str
) -> None:
    app = pgqueue.App(dsn)
    record = app.task_ref("t.record")
    app.enqueue_many([record.job(i) for i in range(14)])
    record.options(queue="later", delay=3600).enqueue(99)  # read from the database per scrape
    port = free_port()
    args = ("--processes", "2", "--concurrency", "2", "--max-tasks-per-child", "3",
            "--metrics-port", str(port), "--start-method", start_method)  # fmt: skip
    with worker_process(dsn, *args) as worker:
        wait_until(lambda: scalar(dsn, "SELECT count(*) FROM pgqueue.jobs"
                                       " WHERE status = 'succeeded'") == 14)  # fmt: skip
        text = scrape(port)
        succeeded = 'pgqueue_jobs_total{outcome="succeeded",task="t.record"}'
        assert sample(text, succeeded) == 14.0, text
        assert sample(text, 'pgqueue_job_duration_seconds_count{task="t.record"}') == 14.0
        assert 'pgqueue_queue_jobs{queue="later",state="scheduled"} 1.0' in text
        # Gauges sum over the live children only: two children of two slots each.
        wait_until(lambda: sample(scrape(port), 'pgqueue_worker_slots{state="total"}') == 4.0)
        log = worker.output()
        assert log.count("event=child_recycled") >= 3, log
        path = re.search(r"event=metrics_start port=\d+ path=(\S+)", log)
        assert path is not None and os.path.isdir(path.group(1))
        # The exited children's counters were folded into one archive file per kind.
        files = os.listdir(path.group(1))
        assert "counter_archive.db" in files
        assert len([f for f in files if f.startswith("counter_")]) <= 3, files
        worker.signal(signal.SIGTERM)
        assert worker.wait(30) == 0, worker.output()
    assert executions(dsn) == 14
    assert not os.path.exists(path.group(1))  # the supervisor removed its directory
    app.close()
