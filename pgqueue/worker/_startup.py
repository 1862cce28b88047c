"""Starting a worker: its connections and threads, and the watchdog.

In order: the claim connection (a failure here is the caller's error: the
database is unreachable; a supervised child waits for it instead of crashing),
the notifier (LISTEN), the completer thread, the heartbeat thread (it
registers the worker row), the services (rescuer, scheduler, pruner,
metrics), the watchdog, the signal handlers. Returns what
it built (:class:`Started`); the worker keeps it and hands it to ``shutdown``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pgqueue.worker._config import HEARTBEAT_MAX
from pgqueue.worker._heartbeat import Heartbeat, Held
from pgqueue.worker._log import log
from pgqueue.worker._notifier import Notifier

if TYPE_CHECKING:
    from pgqueue.worker._worker import Worker

WATCHDOG_TICK = 0.05  # seconds between timeout checks


@dataclass(frozen=True)
class Started:
    """What ``startup`` built beside the worker's own parts."""

    notifier: Notifier | None
    heartbeat: Heartbeat
    watchdog: asyncio.Task[None]


async def startup(worker: Worker) -> Started:
    cfg = worker.config
    if cfg.parent_pid is None:
        await worker.db.open()  # unreachable: the caller's error, raised
    else:
        await worker.db.get()  # a supervised child waits out an outage (backoff)
    notifier = None
    if cfg.listen:
        notifier = Notifier(worker.database, worker.queues, worker.wake,
                            on_cancel=lambda ids: _cancel_requested(worker, ids))  # fmt: skip
        notifier.start()
    worker.completer.start()
    leases = worker.registry.leases()
    heartbeat = Heartbeat(
        worker.database,
        worker_id=worker.worker_id,
        queues=worker.queues,
        concurrency=cfg.concurrency,
        interval=cfg.heartbeat_interval or min(HEARTBEAT_MAX, min(leases) / 3),
        held=lambda: _held(worker),
        on_lost=lambda ids: _lost(worker, ids),
        on_cancel=lambda ids: _cancel_requested(worker, ids),
    )
    heartbeat.start()
    worker.services.start()
    watchdog = asyncio.get_running_loop().create_task(_watchdog(worker))
    worker.install_signal_handlers()
    log(
        logging.INFO,
        "worker_start",
        worker=worker.worker_id,
        queues=",".join(worker.queues),
        concurrency=cfg.concurrency,
        listen=cfg.listen,
        pid=os.getpid(),
    )
    return Started(notifier, heartbeat, watchdog)


# -- heartbeat callbacks (heartbeat thread) ---------------------------------------


def _held(worker: Worker) -> list[Held]:
    """Every lease to renew: running and buffered jobs, finished ones not yet recorded."""
    with worker.lock:
        held = [(j.id, j.token, j.lease) for j in worker.running.values()]
        held += [(j.id, j.token, j.lease) for j in worker.buffer]
    held += [(o.id, o.token, worker.lease) for o in worker.completer.pending()]
    return held


def _lost(worker: Worker, ids: list[int]) -> None:
    worker.take_buffered(ids)  # never start a job whose lease is gone
    metrics = worker.services.metrics
    for job_id in ids:
        job = worker.running.get(job_id)
        if metrics is not None and job is not None:
            metrics.on_finished(job.task, "lost", time.monotonic() - job.t0)
        log(
            logging.WARNING,
            "lease_lost",
            job=job_id,
            worker=worker.worker_id,
            note="its outcome will be fenced; another worker may run it",
        )


def _cancel_requested(worker: Worker, ids: list[int]) -> None:
    # From the heartbeat thread, or the notifier (any worker's jobs: ours are in
    # running, or in the buffer: those end cancelled without starting).
    for job in worker.take_buffered(ids):
        worker.completer.add(worker.executor.cancelled_unstarted(job))
    for job_id in ids:
        if job_id in worker.running:
            worker.call(worker.executor.cancel, job_id, "cancel")


# -- the watchdog: timeouts, gauges, a vanished supervisor ----------------------------


async def _watchdog(worker: Worker) -> None:
    parent = worker.config.parent_pid
    next_second = 0.0
    while True:
        await asyncio.sleep(WATCHDOG_TICK)
        now = time.monotonic()
        with worker.lock:
            overdue = [j for j in worker.running.values() if j.deadline and j.deadline < now]
        for job in overdue:
            worker.executor.expire(job)
        if now >= next_second:
            next_second = now + 1.0
            worker.services.tick(len(worker.running), worker.config.concurrency)
            if parent is not None and os.getppid() != parent and not worker.stopping:
                log(
                    logging.WARNING,
                    "orphaned",
                    worker=worker.worker_id,
                    note="the supervisor is gone; shutting down",
                )
                worker.stop()
