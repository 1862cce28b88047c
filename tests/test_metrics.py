"""Prometheus metrics: hooks and the queue collector, scraped over HTTP."""

from __future__ import annotations

import socket
import urllib.request

import pgqueue
from pgqueue.metrics import WorkerMetrics


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_metrics_endpoint_reports_jobs_and_queues(clean_db: str) -> None:
    with pgqueue.App(clean_db) as app:
        app.enqueue_many([app.task_ref("t", queue="mail").job(i) for i in range(3)])
        app.task_ref("t", queue="mail").options(delay=3600).enqueue()
        metrics = WorkerMetrics(app.database, queue_cache_seconds=0)
        metrics.on_finished("t", "succeeded", 0.01)
        metrics.on_finished("t", "failed", 0.02)
        metrics.on_rescued(2)
        metrics.on_slots(3, 16)
        port = free_port()
        metrics.serve(port, addr="127.0.0.1")
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        finally:
            metrics.close()
    text = body.decode()
    assert 'pgqueue_jobs_total{outcome="succeeded",task="t"} 1.0' in text
    assert 'pgqueue_retries_total{task="t"} 1.0' in text
    assert "pgqueue_lease_rescues_total 2.0" in text
    assert 'pgqueue_worker_slots{state="total"} 16.0' in text
    assert 'pgqueue_queue_jobs{queue="mail",state="ready"} 3.0' in text
    assert 'pgqueue_queue_jobs{queue="mail",state="scheduled"} 1.0' in text
    assert 'pgqueue_queue_oldest_ready_seconds{queue="mail"}' in text


def test_collector_survives_an_outage() -> None:
    app = pgqueue.App("postgresql://nobody@127.0.0.1:1/none", connect_timeout=1)
    metrics = WorkerMetrics(app.database, queue_cache_seconds=0)
    names = [m.name for m in metrics.registry.collect()]
    assert "pgqueue_queue_jobs" in names
