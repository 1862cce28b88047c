"""What a worker process runs beside its jobs: maintenance loops and metrics.

* The rescuer (expired leases) in every worker process: its passes take an
  advisory lock, so many rescuers cost one pass at a time.
* The scheduler (cron, after upserting the app's schedules) and the pruner
  (retention), in one process per supervisor (child 0), and never in burst
  mode (``until_empty``: a cron fire would keep a draining worker alive).
* Prometheus metrics on ``metrics_port``, or, in a supervisor's child, into the
  supervisor's shared files (``_metrics_mp``).

Each runs on a thread of its own with its own connection; ``stop`` is idempotent.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from pgqueue.maintenance.rescuer import Rescuer
from pgqueue.worker import _metrics_mp

if TYPE_CHECKING:
    from pgqueue._db import Database
    from pgqueue._registry import Registry
    from pgqueue.metrics import WorkerMetrics
    from pgqueue.worker._config import WorkerConfig


class Services:
    def __init__(self, database: Database, registry: Registry, config: WorkerConfig) -> None:
        self._database = database
        self._registry = registry
        self._config = config
        self.rescuer: Rescuer | None = None
        self.metrics: WorkerMetrics | None = None
        self._loops: list[Any] = []
        self._rescued_seen = 0

    def start(self) -> None:
        cfg = self._config
        if cfg.metrics_port is not None or _metrics_mp.in_supervised_child():
            from pgqueue.metrics import WorkerMetrics

            if cfg.metrics_port is None:  # the supervisor serves what this process records
                _metrics_mp.enable_in_child()
            self.metrics = WorkerMetrics(self._database)
            if cfg.metrics_port is not None:
                self.metrics.serve(cfg.metrics_port, cfg.metrics_host)
        if cfg.rescue:
            self.rescuer = Rescuer(self._database, interval=cfg.rescue_interval)
            self._loops.append(self.rescuer)
        if not cfg.until_empty:
            if cfg.scheduler:
                from pgqueue.maintenance.scheduler import Scheduler

                self._loops.append(Scheduler(self._database, self._registry))
            if cfg.pruner:
                from pgqueue.maintenance.pruner import Pruner

                self._loops.append(Pruner(self._database, retention=cfg.retention,
                                          dead_retention=cfg.dead_retention))  # fmt: skip
        for loop in self._loops:
            loop.start()

    def tick(self, busy: int, total: int) -> None:
        """Refresh the slot and rescue gauges (about once a second)."""
        if self.metrics is None:
            return
        self.metrics.on_slots(busy, total)
        if self.rescuer is not None:
            rescued = self.rescuer.rescued
            self.metrics.on_rescued(rescued - self._rescued_seen)
            self._rescued_seen = rescued

    def stop(self) -> None:
        loops, self._loops = self._loops, []
        for loop in loops:
            loop.stop()
        if self.metrics is not None:
            with contextlib.suppress(Exception):
                self.metrics.close()
            self.metrics = None
