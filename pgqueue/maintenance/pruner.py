"""The pruner: deletes finished jobs once their retention has passed.

``succeeded`` and ``cancelled`` jobs are kept ``retention`` seconds (default one
day) after they finish, ``dead`` jobs ``dead_retention`` (default 30 days); a
queue may override either (``pgqueue.queues.retention`` / ``dead_retention``,
see ``App.set_queue``). Deletes run in small batches, each its own short
transaction with ``SKIP LOCKED``, so a pass never holds long locks and never
touches an unfinished job. One pass at a time across all processes
(``pg_try_advisory_xact_lock``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg

from pgqueue._keys import PRUNER_LOCK
from pgqueue._sql import query
from pgqueue.maintenance._service import Service

if TYPE_CHECKING:
    from pgqueue._db import Database

PRUNE_INTERVAL = 60.0  # seconds between passes
RETENTION = 86_400.0  # succeeded / cancelled: one day
DEAD_RETENTION = 30 * 86_400.0  # dead: thirty days
PRUNE_BATCH = 500  # rows per delete statement
MAX_BATCHES = 200  # per pass, so one pass stays short under a large backlog
CATCH_UP_DELAY = 0.1  # seconds before the next pass when one stopped at its cap
LOCK_KEY = PRUNER_LOCK


class Pruner(Service):
    """Deletes finished jobs past their retention; see the module docstring."""

    name = "pruner"

    def __init__(
        self,
        database: Database,
        *,
        interval: float = PRUNE_INTERVAL,
        retention: float = RETENTION,
        dead_retention: float = DEAD_RETENTION,
        batch: int = PRUNE_BATCH,
        max_batches: int = MAX_BATCHES,
    ) -> None:
        super().__init__(database, interval)
        if retention < 0 or dead_retention < 0 or batch < 1 or max_batches < 1:
            raise ValueError("pruner retentions must be >= 0, batch and max_batches >= 1")
        self.retention = retention
        self.dead_retention = dead_retention
        self.batch = batch
        self.max_batches = max_batches
        self.pruned = 0
        self.capped = False  # the last pass stopped at max_batches: more has expired

    def loop_pass(self) -> float | None:
        self.run_once()
        return CATCH_UP_DELAY if self.capped else None

    def run_once(self, now: datetime | None = None) -> int:
        """One pass; returns the number of jobs deleted (0 if another pruner runs)."""
        self.capped = False
        total = self.db.run(lambda conn: self._locked_pass(conn, now))
        if total:
            self.logger.info("event=prune deleted=%d", total)
        self.pruned += total
        return total

    def _locked_pass(self, conn: psycopg.Connection[Any], now: datetime | None) -> int:
        locked = conn.execute(query("prune_lock"), {"key": LOCK_KEY}).fetchone()
        if not locked or not locked[0]:
            return 0
        try:
            conn.execute(query("prune_no_jit"))  # the connection is the pruner's own
            total = self._delete(conn, now)
        finally:
            conn.execute(query("prune_unlock"), {"key": LOCK_KEY})
        return total

    def _delete(self, conn: psycopg.Connection[Any], now: datetime | None) -> int:
        if now is None:
            row = conn.execute("SELECT now()").fetchone()
            assert row is not None
            now = row[0]
        assert now is not None
        overrides = conn.execute(query("prune_settings")).fetchall()
        total = 0
        for statuses, default, column in (
            (["succeeded", "cancelled"], self.retention, 1),
            (["dead"], self.dead_retention, 2),
        ):
            shortest = min([default, *(r[column] for r in overrides if r[column] is not None)])
            params = {
                "statuses": statuses,
                "default": default,
                "cutoff": now - timedelta(seconds=shortest),
                "now": now,
                "limit": self.batch,
            }
            for _ in range(self.max_batches):
                deleted = len(conn.execute(query("prune"), params).fetchall())
                total += deleted
                if deleted < self.batch or self._stop.is_set():
                    break
            else:
                self.capped = True
        return total
