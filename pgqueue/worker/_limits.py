"""Queues with a concurrency or rate limit (``app.set_queue(max_running=..., rate_limit=...)``).

The plain ``claim`` skips them (in SQL, so a new limit applies at once); the
worker claims them with ``claim_limited`` instead, inside a transaction that
first locks their ``pgqueue.queues`` rows (``lock_limited_queues``), so that
concurrent workers count each other's claims: ``max_running`` caps the jobs
running in that queue across all workers, ``rate_limit`` the starts per window
of ``rate_period`` seconds. Which of the worker's queues are limited is
re-read at most once per ``REFRESH`` seconds; unlimited workloads pay nothing
else.
"""

from __future__ import annotations

import time
from typing import Any

from pgqueue._sql import query
from pgqueue.worker._claimed import Claimed
from pgqueue.worker._connect import LoopConnection

REFRESH = 1.0  # seconds between re-reads of which queues are limited


class LimitedQueues:
    def __init__(self, queues: list[str]) -> None:
        self._queues = queues
        self.names: list[str] = []  # the limited ones, in the worker's order
        self._read_at = float("-inf")

    async def refresh(self, db: LoopConnection) -> None:
        if time.monotonic() - self._read_at < REFRESH:
            return
        rows = await db.fetch(query("limited_queues"), {"queues": self._queues})
        if rows is not None:
            limited = {row[0] for row in rows}
            self.names = [q for q in self._queues if q in limited]
            self._read_at = time.monotonic()

    async def claim(
        self, db: LoopConnection, queues: list[str], params: dict[str, Any]
    ) -> list[Claimed]:
        """Up to ``params["limit"]`` jobs from the limited ones among ``queues``, in that order."""
        order = [q for q in queues if q in self.names]
        if not order:
            return []
        rows = await db.fetch_in_transaction(
            [
                (query("lock_limited_queues"), {"queues": order}),
                (query("claim_limited"), {**params, "queues": order}),
            ]
        )
        lease, token = params["lease"], params["token"]
        # claim_limited returns the columns of `claim` (lease_candidates).
        return [Claimed(row, lease, token) for row in rows or ()]
