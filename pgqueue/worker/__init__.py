"""The worker runtime: claim, run, record; leases, heartbeats, rescue, shutdown.

Worker -> executor -> completer, around an asyncio loop::

    _worker.py      the claim loop: free slots -> one `claim` statement -> dispatch
    _startup.py     connections and threads in order; the watchdog (timeouts)
    _shutdown.py    graceful shutdown: release unstarted, grace period, flush
    _notifier.py    LISTEN pgqueue_jobs; reconnect with backoff, re-LISTEN, fetch
    _executor.py    runs one job (sync: task threads, async: the loop) -> Outcome
    _threads.py     the task threads; a thread stuck past a timeout is abandoned
    _completer.py   batches outcomes into one `complete` statement per flush
    _heartbeat.py   lease renewal and the worker row, on a thread of its own
    _limits.py      queues with max_running / rate_limit: their own claim
    _bounds.py      where each claim starts: after the claimed prefix (pinned horizons)
    _services.py    rescuer, scheduler, pruner, Prometheus metrics
    _supervisor.py  --processes P: restarts crashed children, recycles them
    _metrics_mp.py  --processes P: one /metrics for the supervisor and its children
    _config.py      WorkerConfig and its defaults
    _connect.py, _claimed.py, _log.py, _signals.py: small shared pieces

Guarantees (see DESIGN.md): a job is claimed with a lease (``App(lease=30)``,
``TaskConfig.lease``) renewed by the heartbeat; a worker that loses it cannot
record an outcome (the lease token fences ``complete``); the rescuer returns
expired leases to the queue. Outcomes of jobs that finished are recorded
before the worker exits; claimed jobs it never started are given back at once.

Embedding: ``app.run_worker(...)`` / ``await app.run_worker_async(...)``, or
``run_worker(app.database, app.registry, WorkerConfig(...))`` here.
Only a worker on an event loop of its own (``run_worker``) installs SIGTERM/SIGINT
handlers by default; on the host's loop (``run_worker_async``) the host keeps its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pgqueue._errors import ConfigurationError
from pgqueue.worker._config import (
    EXIT_ABORTED,
    EXIT_OK,
    RECYCLE_EXIT_CODE,
    WorkerConfig,
    parse_queues,
)
from pgqueue.worker._executor import JobTimeout
from pgqueue.worker._supervisor import Supervisor
from pgqueue.worker._worker import Worker

if TYPE_CHECKING:
    from pgqueue._db import Database
    from pgqueue._registry import Registry

__all__ = [
    "EXIT_ABORTED",
    "EXIT_OK",
    "RECYCLE_EXIT_CODE",
    "JobTimeout",
    "Supervisor",
    "Worker",
    "WorkerConfig",
    "parse_queues",
    "run_worker",
    "run_worker_async",
]


def run_worker(
    database: Database, registry: Registry, config: WorkerConfig | None = None
) -> int:
    """Run until stopped (or drained, with ``until_empty``); returns the exit code.

    With ``processes > 1`` or ``max_tasks_per_child``, a supervisor runs the
    workers as child processes.
    """
    config = config or WorkerConfig()
    if config.processes > 1 or config.max_tasks_per_child is not None:
        return Supervisor(database, registry, config).run()
    return Worker(database, registry, config).run()


async def run_worker_async(
    database: Database, registry: Registry, config: WorkerConfig | None = None
) -> int:
    """Run one worker on the current event loop (no supervisor: ``processes`` must be 1)."""
    config = config or WorkerConfig()
    if config.processes > 1 or config.max_tasks_per_child is not None:
        raise ConfigurationError("several processes need run_worker(), not run_worker_async()")
    return await Worker(database, registry, config).run_async()
