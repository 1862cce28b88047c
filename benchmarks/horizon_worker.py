"""Claim timing inside a benchmark worker process (``claim_log`` in its config).

Wraps ``Worker._claim`` (the claim statements a turn of the claim loop runs)
and appends ``<wall time> <seconds> <jobs>`` per claim to a file, line
buffered so that what a stopped worker timed is on disk.
"""

from __future__ import annotations

import time
from typing import Any

from pgqueue.worker._worker import Worker


def time_claims(path: str) -> None:
    log = open(path, "a", buffering=1)  # noqa: SIM115 - open for the process's life
    claim = Worker._claim

    async def timed(self: Worker, limit: int) -> Any:
        t0 = time.perf_counter()
        jobs = await claim(self, limit)
        log.write(f"{time.time():.6f} {time.perf_counter() - t0:.6f} {len(jobs)}\n")
        return jobs

    Worker._claim = timed  # type: ignore[method-assign]
