"""Prometheus metrics for a worker process (``pgqueue worker --metrics-port``).

Counters and histograms are fed by the worker as jobs finish; queue depth and
oldest age are read from ``pgqueue.jobs`` when Prometheus scrapes (cached for
a few seconds, so many scrapers cost one query). With ``--processes N`` the
supervisor serves one endpoint for all its children (``aggregate_registry``,
see ``pgqueue.worker._metrics_mp``): counters sum over every child that ran,
recycled ones included. The endpoint listens on 127.0.0.1 unless
``--metrics-host`` (``WorkerConfig.metrics_host``) names another address.

Metrics:

- ``pgqueue_jobs_total{task,outcome}``: attempts finished, outcome one of
  succeeded, failed (will retry), dead, cancelled, lost (lease lost, result dropped)
- ``pgqueue_job_duration_seconds{task}``: attempt run time
- ``pgqueue_retries_total{task}``: attempts that scheduled a retry
- ``pgqueue_lease_rescues_total``: expired leases this process's rescuer returned
- ``pgqueue_worker_slots{state}``: busy and total slots of this process
- ``pgqueue_queue_jobs{queue,state}``: ready, scheduled, running, retrying, dead
- ``pgqueue_queue_oldest_ready_seconds{queue}``: age of the oldest ready job
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import psycopg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pgqueue._sql import query
from pgqueue.maintenance._service import DedicatedConnection

if TYPE_CHECKING:
    from pgqueue._db import Database

QUEUE_CACHE_SECONDS = 5.0
STATES = ("ready", "scheduled", "running", "retrying", "dead")


class _QueueCollector(Collector):
    """Queue depth and oldest age, read from the database at scrape time."""

    def __init__(self, database: Database, cache_seconds: float) -> None:
        self._db = DedicatedConnection(database)  # scrapes take turns on it (the lock)
        self._cache_seconds = cache_seconds
        self._rows: list[tuple[Any, ...]] = []
        self._read_at = 0.0
        self._lock = threading.Lock()

    def _read(self) -> list[tuple[Any, ...]]:
        with self._lock:
            if time.monotonic() - self._read_at >= self._cache_seconds:
                self._rows = self._db.run(lambda c: c.execute(query("metrics_queues")).fetchall())
                self._read_at = time.monotonic()
            return self._rows

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily("pgqueue_queue_jobs", "Jobs per queue and state",
                                  labels=["queue", "state"])  # fmt: skip
        oldest = GaugeMetricFamily("pgqueue_queue_oldest_ready_seconds",
                                   "Age of the oldest ready job", labels=["queue"])  # fmt: skip
        try:
            rows = self._read()
        except psycopg.Error:
            rows = []  # a scrape during an outage reports no queue figures
        for queue, *counts, age in rows:
            for state, count in zip(STATES, counts, strict=True):
                depth.add_metric([queue, state], float(count))
            oldest.add_metric([queue], float(age))
        yield depth
        yield oldest

    def close(self) -> None:
        with self._lock:
            self._db.close()


class _Merged(Collector):
    """Every process's multiprocess files in ``path``, merged at scrape time."""

    def __init__(self, path: str, lock: threading.Lock) -> None:
        self._path = path
        self._lock = lock  # held by whoever rewrites the files (the supervisor)

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.multiprocess import MultiProcessCollector

        with self._lock:
            merged = list(MultiProcessCollector(None, self._path).collect())
        yield from merged


def aggregate_registry(
    database: Database,
    path: str,
    lock: threading.Lock,
    *,
    queue_cache_seconds: float = QUEUE_CACHE_SECONDS,
) -> CollectorRegistry:
    """What a supervisor serves: its children's metrics (prometheus_client's
    multiprocess files in ``path``) and the queue figures, read once per scrape."""
    registry = CollectorRegistry()
    registry.register(_Merged(path, lock))
    registry.register(_QueueCollector(database, queue_cache_seconds))
    return registry


class WorkerMetrics:
    """The metrics of one worker process; call the ``on_*`` hooks as things happen."""

    def __init__(
        self,
        database: Database,
        registry: CollectorRegistry | None = None,
        *,
        queue_cache_seconds: float = QUEUE_CACHE_SECONDS,
    ) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.jobs = Counter("pgqueue_jobs", "Attempts finished", ["task", "outcome"], registry=r)
        self.duration = Histogram(
            "pgqueue_job_duration_seconds", "Attempt run time", ["task"], registry=r,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300),
        )  # fmt: skip
        self.retries = Counter("pgqueue_retries", "Attempts that retry", ["task"], registry=r)
        self.rescues = Counter("pgqueue_lease_rescues", "Expired leases rescued", registry=r)
        # livesum: under a supervisor, the sum over its live children.
        self.slots = Gauge("pgqueue_worker_slots", "Slots of this process", ["state"],
                           registry=r, multiprocess_mode="livesum")  # fmt: skip
        self._queues = _QueueCollector(database, queue_cache_seconds)
        r.register(self._queues)
        self._server: Any = None

    def on_finished(self, task: str, outcome: str, duration: float) -> None:
        self.jobs.labels(task, outcome).inc()
        self.duration.labels(task).observe(duration)
        if outcome == "failed":
            self.retries.labels(task).inc()

    def on_rescued(self, count: int) -> None:
        if count:
            self.rescues.inc(count)

    def on_slots(self, busy: int, total: int) -> None:
        self.slots.labels("busy").set(busy)
        self.slots.labels("total").set(total)

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        """Serve ``/metrics`` on a background thread (loopback only, unless ``addr`` says)."""
        self._server = start_http_server(port, addr=addr, registry=self.registry)

    def close(self) -> None:
        """Stop serving and close the collector's connection; idempotent."""
        if self._server is not None:
            server, _thread = self._server
            server.shutdown()
            self._server = None
        self._queues.close()
