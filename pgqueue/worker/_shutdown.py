"""Graceful shutdown of a worker, in order.

1. Stop claiming (the loop has returned).
2. Give back claimed-but-unstarted jobs at once (``release``, started=false:
   the attempt does not count).
3. Let running jobs finish within ``shutdown_grace``; a second signal
   (``abort()``) cuts the wait short.
4. Jobs still running then are released (started=true: the attempt counts;
   a job with no attempt left goes to ``dead``, as the rescuer would send it),
   async ones cancelled; sync threads cannot be stopped and are abandoned
   (their late outcomes are ignored). The exit code becomes 1.
5. Flush the completer, then stop the notifier, heartbeat (the worker row is
   removed), maintenance loops and metrics, task threads; close the claim connection.

``shutdown`` returns the exit code; the worker logs ``worker_stop`` with the
code it finally returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

import psycopg

from pgqueue._errors import first_line
from pgqueue._sql import query
from pgqueue.worker._claimed import Claimed
from pgqueue.worker._config import EXIT_ABORTED, EXIT_OK
from pgqueue.worker._log import log

if TYPE_CHECKING:
    from pgqueue.worker._startup import Started
    from pgqueue.worker._worker import Worker

SHUTDOWN_TICK = 0.01  # seconds between checks while running jobs finish


async def shutdown(worker: Worker, started: Started) -> int:
    """Stop ``worker`` (its claim loop has returned); returns the exit code."""
    code = EXIT_OK
    await _release(worker, _unstarted(worker), started=False)
    deadline = time.monotonic() + worker.config.shutdown_grace
    aborting = worker.aborting
    while worker.running and time.monotonic() < deadline:
        if aborting is not None and aborting.is_set():
            break
        await asyncio.sleep(SHUTDOWN_TICK)
    if worker.running:
        jobs = worker.take(list(worker.running.values()))
        for job in jobs:
            worker.executor.cancel(job.id, "abort")
        await _release(worker, jobs, started=True)
        code = EXIT_ABORTED
    await asyncio.to_thread(worker.completer.stop)
    await _stop_services(worker, started)
    return code


def _unstarted(worker: Worker) -> list[Claimed]:
    jobs = [item[0] for item in worker.executor.threads.drain()]
    # Async jobs whose task has not taken its first step yet: cancelling now means
    # the coroutine never starts.
    for job in list(worker.running.values()):
        if not job.started and worker.executor.cancel(job.id, "abort"):
            jobs.append(job)
    return worker.take(jobs) + worker.take_undispatched()


async def _release(worker: Worker, jobs: list[Claimed], *, started: bool) -> None:
    if not jobs:
        return
    params = {
        "ids": [j.id for j in jobs],
        "tokens": [j.token for j in jobs],
        "started": [started] * len(jobs),
    }
    ids = ",".join(str(j.id) for j in jobs)
    try:
        rows = await worker.db.fetch(query("release"), params, retry=False)
        if rows is None:
            raise psycopg.OperationalError("the database is unavailable")
        log(
            logging.INFO if not started else logging.WARNING,
            "release",
            worker=worker.worker_id,
            jobs=ids,
            released=len(rows),
            dead=",".join(str(r[0]) for r in rows if r[1] == "dead") or None,
            started=started,
        )
    except psycopg.Error as exc:
        log(
            logging.ERROR,
            "release_failed",
            worker=worker.worker_id,
            jobs=ids,
            error=first_line(exc),
            note="the rescuer will return them when their lease expires",
        )


async def _stop_services(worker: Worker, started: Started) -> None:
    started.watchdog.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await started.watchdog
    if started.notifier is not None:
        await started.notifier.stop()
    await asyncio.to_thread(started.heartbeat.stop)
    await asyncio.to_thread(worker.services.stop)
    worker.executor.threads.stop()
    await worker.db.close()
    if worker.executor.used_apool:
        # Async transactional tasks used the async pool: it is bound to this
        # event loop, which ends with the worker.
        await worker.database.close_pool_async()
