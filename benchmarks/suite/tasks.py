"""The pgqueue app and tasks the suite's workers run (``benchmarks.suite.tasks:app``).

The DSN comes from ``$PGQUEUE_DSN``, set by whoever starts the worker.
"""

from __future__ import annotations

import time

import pgqueue

QUEUE = "bench"
MIXED_QUEUES = ("critical", "high", "default", "low")  # strict order: critical first
MIXED_PRIORITY = {"critical": 30, "high": 20, "default": 10, "low": 0}
SLOW_SECONDS = 0.050

app = pgqueue.App()


@app.task(name="bench.noop", queue=QUEUE)
def noop() -> None:
    return None


@app.task(name="bench.anoop", queue=QUEUE)
async def anoop() -> None:
    return None


@app.task(name="bench.sleep", queue=QUEUE)
def sleep() -> None:
    time.sleep(SLOW_SECONDS)


@app.task(name="bench.sink", queue=QUEUE)
def sink(payload: str) -> None:
    """Takes a payload and does nothing (the pinned-horizon producer's jobs)."""
    return None
