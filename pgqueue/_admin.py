"""Operator actions on jobs: retry, cancel, dead-letter replay, purge, queue stats.

Each action is an operation (a generator of statements, see ``_db``): written
once, driven by ``Database.run`` or ``Database.run_async``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pgqueue._core import check_status
from pgqueue._db import Operation, Statement
from pgqueue._sql import query


def _ids(ids: Any) -> list[int]:
    out = [int(i) for i in ids]
    if any(i <= 0 for i in out):
        raise ValueError("job ids are positive integers")
    return out


class Retried(list[int]):
    """The ids requeued by ``retry_jobs`` (a list, as before), sorted.

    ``skipped``: the ids left as they were because an unfinished job holds
    their unique key again (in its scope); retry them once it has finished.
    """

    __module__ = "pgqueue"

    def __init__(self, ids: Iterable[int] = (), skipped: Iterable[int] = ()) -> None:
        super().__init__(sorted(ids))
        self.skipped: list[int] = sorted(skipped)


class Replayed(int):
    """How many dead jobs ``replay_dead`` requeued (an int, as before).

    ``skipped``: the ids left dead because an unfinished job holds their
    unique key again (in its scope); replay them once it has finished.
    """

    __module__ = "pgqueue"

    skipped: list[int]

    def __new__(cls, count: int = 0, skipped: Iterable[int] = ()) -> Replayed:
        self = super().__new__(cls, count)
        self.skipped = sorted(skipped)
        return self


def retry_jobs(ids: Any) -> Operation[Retried]:
    """Requeue failed, dead or cancelled jobs now; returns the ids requeued."""
    rows = yield Statement(query("retry_jobs"), {"ids": _ids(ids)})
    return Retried((r[0] for r in rows if r[1]), (r[0] for r in rows if not r[1]))


def cancel_jobs(ids: Any) -> Operation[dict[str, list[int]]]:
    """Cancel waiting jobs; request cancellation of running ones."""
    rows = yield Statement(query("cancel_jobs"), {"ids": _ids(ids)})
    return {
        "cancelled": sorted(r[0] for r in rows if r[1] == "cancelled"),
        "requested": sorted(r[0] for r in rows if r[1] == "running"),
    }


def replay_dead(
    *,
    queue: str | None = None,
    task: str | None = None,
    since: datetime | None = None,
    batch_size: int = 1000,
    limit: int | None = None,
) -> Operation[Replayed]:
    """Requeue dead jobs matching the filters, in batches (one statement each).

    At most ``limit`` jobs are requeued; jobs whose unique key is held again
    are skipped (``Replayed.skipped``) and the rest of the batch goes on.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    if limit is not None and limit < 0:
        raise ValueError("limit must be >= 0")
    total, after = 0, 0
    skipped: list[int] = []
    while limit is None or total < limit:
        size = batch_size if limit is None else min(batch_size, limit - total)
        params = {"queue": queue, "task": task, "since": since, "limit": size, "after": after}
        rows = yield Statement(query("replay_dead"), params)
        total += sum(1 for r in rows if r[1])
        skipped += (r[0] for r in rows if not r[1])
        if len(rows) < size:
            break
        after = max(r[0] for r in rows)  # skipped jobs stay dead: move past them
    return Replayed(total, skipped)


def purge(
    *,
    statuses: list[str] | None = None,
    queue: str | None = None,
    task: str | None = None,
    older_than: float | None = None,
    batch_size: int = 1000,
) -> Operation[int]:
    """Delete jobs matching explicit filters (at least one), in batches; never running ones."""
    if not (statuses or queue or task or older_than is not None):
        raise ValueError("purge needs at least one filter (status, queue, task or age)")
    for status in statuses or ():
        check_status(status)
        if status == "running":
            raise ValueError("running jobs cannot be purged; cancel them first")
    if older_than is not None and older_than < 0:
        raise ValueError("older_than must be >= 0 seconds")
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    params = {"statuses": statuses or None, "queue": queue, "task": task,
              "older_than": older_than, "limit": batch_size}  # fmt: skip
    total = 0
    while True:
        n = len((yield Statement(query("purge"), params)))
        total += n
        if n < batch_size:
            return total


def queue_stats() -> Operation[list[dict[str, Any]]]:
    rows = yield Statement(query("queue_stats"), rows="dict")
    return rows
