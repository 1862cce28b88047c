"""The rescuer: jobs whose lease expired go back to the queue, or to dead.

A job's lease lapses when its worker stops renewing it: killed (kill -9,
OOM), host lost, network cut, or stalled for longer than the lease. Each pass
takes ``pg_try_advisory_xact_lock`` first, so however many workers run a
rescuer, one pass runs at a time and the others skip theirs. A rescued job
counts the lost attempt: it is ``queued`` again while attempts remain, else
``dead``; either way the loss is appended to its ``errors`` and its queue is
notified. A pass also forgets workers whose heartbeat stopped long ago
(``pgqueue.workers``).

A job becomes claimable again within one lease period plus one interval.

A pass reads ``jobs_lease_idx`` (running jobs by ``leased_until``) from the
cutoff of this rescuer's previous pass (the database's ``now()`` then), not
from the start: while the MVCC horizon is pinned (a long transaction, a
``REPEATABLE READ`` report, a lagging slot) every claimed job leaves a dead
entry vacuum cannot remove, and a scan from the start walks all of them. A
lease that lapsed behind the bound without being seen (its row locked by
another statement at that pass, a claim or an UPDATE that committed later than
a lease after it began) is found by a full pass every ``full_every`` seconds
(and the first pass of each rescuer is a full one).

After an outage (a lost connection, a read-only server) leases may have
lapsed only because nobody could write: once a write succeeds again, the
rescuer waits ``OUTAGE_GRACE`` before its next pass, so that every worker's
heartbeat (which retries at least once a second) renews the leases it still
holds, and its completer records what finished, before any job is taken back.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg

from pgqueue._keys import RESCUER_LOCK
from pgqueue._sql import query
from pgqueue.maintenance._service import Service

if TYPE_CHECKING:
    from pgqueue._db import Database

RESCUE_INTERVAL = 5.0  # seconds between passes
RESCUE_BATCH = 1000  # jobs per statement; a pass repeats until a batch comes back short
WORKER_RETENTION = 600.0  # seconds of silence after which a worker row is removed
LOCK_KEY = RESCUER_LOCK
OUTAGE_GRACE = 2.0  # seconds after writes return before rescuing (twice RECONNECT_MAX)
FULL_EVERY = 60.0  # seconds between full passes (from the start of jobs_lease_idx)


class Rescuer(Service):
    """Returns expired-lease jobs to ``queued`` (or ``dead``); see the module docstring.

    ``start()`` runs a pass every ``interval`` seconds on a thread of its own and
    returns at once; ``stop()`` is idempotent; ``run_once()`` runs one pass here.
    """

    name = "rescuer"

    def __init__(
        self,
        database: Database,
        *,
        interval: float = RESCUE_INTERVAL,
        batch: int = RESCUE_BATCH,
        worker_retention: float = WORKER_RETENTION,
        full_every: float = FULL_EVERY,
    ) -> None:
        super().__init__(database, interval)
        if batch < 1:
            raise ValueError("rescuer batch must be >= 1")
        self.batch = batch
        self.worker_retention = worker_retention
        self.full_every = full_every
        self.rescued = 0
        self.after: datetime | None = None  # the next pass's bound; None: a full pass
        self._full_at = 0.0  # time.monotonic() of the last full pass

    def loop_pass(self) -> float | None:
        if self.outage:
            # Writes may be back: probe with this pass's own housekeeping (it raises
            # while the outage lasts), then leave the heartbeats time to renew.
            self.db.run(lambda c: c.execute(query("workers_prune"),
                                            {"seconds": self.worker_retention}))  # fmt: skip
            return OUTAGE_GRACE
        self.run_once()
        return None

    def run_once(self) -> int:
        """One pass; returns how many jobs it rescued (0 when another rescuer holds the lock)."""
        total = self.db.run(self._rescue)
        self.rescued += total
        return total

    def _rescue(self, conn: psycopg.Connection[Any]) -> int:
        total = 0
        full = self.after is None or time.monotonic() - self._full_at >= self.full_every
        after = None if full else self.after
        with conn.transaction():
            locked = conn.execute(query("rescuer_lock"), {"key": LOCK_KEY}).fetchone()
            if not locked or not locked[0]:
                return 0  # another rescuer's pass: this one's bound stays where it was
            cutoff = locked[1]
            while True:
                rows = conn.execute(query("rescue"),
                                    {"limit": self.batch, "after": after}).fetchall()  # fmt: skip
                for job_id, status, queue, _ in rows:
                    self.logger.warning("event=rescue job=%s queue=%s status=%s",
                                        job_id, queue, status)  # fmt: skip
                total += len(rows)
                if len(rows) < self.batch:
                    break
            conn.execute(query("workers_prune"), {"seconds": self.worker_retention})
        # Committed: every lease that lapsed before the cutoff and was visible is handled.
        self.after = cutoff
        if full:
            self._full_at = time.monotonic()
        return total
