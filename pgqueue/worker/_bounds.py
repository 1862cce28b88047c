"""Claim bounds: where each queue's next claim starts, so that claims stay flat
while the MVCC horizon is pinned.

Claiming moves a job out of ``jobs_claim_idx``'s predicate (a non-HOT update)
and leaves a dead entry at the front of the index. While any session in the
database pins the horizon (idle in transaction, a long REPEATABLE READ report,
``pg_dump``, a lagging replication slot) those entries can neither be vacuumed
nor marked killed, and a claim that scans from the front visits every one of
them: its cost grows with the dead tuples and the queue stalls within minutes.

So the worker remembers, per queue and priority, the newest ``run_at`` it
claimed, and claims from there minus ``slack`` (``claim_after``): the index
scan starts after the claimed prefix. A job can land behind a bound: enqueued
by a transaction that began more than ``slack`` before its commit, released,
rescued, or given a past ``run_at``. The plain ``claim`` (from the front of
the index) finds those; it runs at least every ``rescan`` seconds, spaced so
that it takes at most ``1/duty`` of the time (under a pinned horizon it is the
slow one).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

SLACK = 0.25  # seconds: an enqueue transaction shorter than this is never behind a bound
RESCAN = 1.0  # seconds: the longest a job behind a bound waits, horizon not pinned
DUTY = 100.0  # a plain claim that took t seconds is not repeated within duty * t
MAX_LEVELS = 16  # priorities bounded per queue; the others are scanned from the front
_BELOW_ALL, _ABOVE_ALL = -32769, 32768  # outside smallint: an unbounded priority span

Segments = dict[str, list[Any]]


class ClaimBounds:
    """Per queue, per priority: the newest run_at claimed; when to claim from the front."""

    def __init__(
        self,
        *,
        slack: float = SLACK,
        rescan: float = RESCAN,
        duty: float = DUTY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.slack = timedelta(seconds=slack)
        self.rescan = rescan
        self.duty = duty
        self.clock = clock
        self.levels: dict[str, dict[int, datetime]] = {}
        self.next_plain = 0.0  # clock() time from which the next claim is a plain one

    def plain_due(self) -> bool:
        """Claim from the front now: nothing bounded yet, or the rescan is due."""
        return not self.levels or self.clock() >= self.next_plain

    def plain_done(self, started: float) -> None:
        """A plain claim begun at ``started`` (``clock()``) returned."""
        now = self.clock()
        self.next_plain = now + max(self.rescan, self.duty * (now - started))

    def advance(self, rows: Iterable[Sequence[Any]]) -> None:
        """Move the bounds past claimed rows (``lease_candidates``: queue at 1,
        priority and run_at last)."""
        for row in rows:
            queue, priority, run_at = row[1], row[-2], row[-1]
            levels = self.levels.setdefault(queue, {})
            seen = levels.get(priority)
            if seen is None:
                if len(levels) >= MAX_LEVELS:
                    continue
                levels[priority] = run_at
            elif run_at > seen:
                levels[priority] = run_at

    def segments(self, queues: Sequence[str]) -> Segments:
        """``claim_after``'s segments, in claim order: per queue, by priority
        descending, unbounded spans between the bounded levels."""
        seg: Segments = {k: [] for k in ("seg_queue", "seg_above", "seg_below",
                                         "seg_priority", "seg_after")}  # fmt: skip

        def add(queue: str, above: int, below: int, level: int | None, after: Any) -> None:
            if level is None and below - above <= 1:
                return  # an empty priority span: nothing to scan
            seg["seg_queue"].append(queue)
            seg["seg_above"].append(above)
            seg["seg_below"].append(below)
            seg["seg_priority"].append(level)
            seg["seg_after"].append(after)

        for queue in queues:
            below = _ABOVE_ALL
            for level, run_at in sorted(self.levels.get(queue, {}).items(), reverse=True):
                add(queue, level, below, None, None)
                add(queue, level, level, level, run_at - self.slack)
                below = level
            add(queue, _BELOW_ALL, below, None, None)
        return seg
