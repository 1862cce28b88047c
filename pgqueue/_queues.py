"""Per-queue controls: pause, concurrency and rate limits, depth, retention.

Settings live in ``pgqueue.queues``; workers read them in the claim itself,
so a change applies at once on every host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pgqueue._core import check_queue_name
from pgqueue._db import Operation, Statement
from pgqueue._sql import query

CLEARABLE = ("max_running", "rate_limit", "max_depth", "retention", "dead_retention")


@dataclass(frozen=True)
class QueueSettings:
    """A queue's controls; ``None`` means "no limit" / "the default"."""

    __module__ = "pgqueue"

    name: str
    paused: bool = False
    max_running: int | None = None
    rate_limit: int | None = None
    rate_period: float = 1.0
    max_depth: int | None = None
    retention: float | None = None
    dead_retention: float | None = None


def set_queue(
    name: str,
    *,
    paused: bool | None = None,
    max_running: int | None = None,
    rate_limit: int | None = None,
    rate_period: float | None = None,
    max_depth: int | None = None,
    retention: float | None = None,
    dead_retention: float | None = None,
    clear: tuple[str, ...] = (),
) -> Operation[QueueSettings]:
    check_queue_name(name)
    for label, value in (("max_running", max_running), ("rate_limit", rate_limit),
                         ("max_depth", max_depth), ("retention", retention),
                         ("dead_retention", dead_retention)):  # fmt: skip
        if value is not None and value < 0:
            raise ValueError(f"{label} must be >= 0")
    if rate_period is not None and rate_period <= 0:
        raise ValueError("rate_period must be > 0 seconds")
    unknown = set(clear) - set(CLEARABLE)
    if unknown:
        raise ValueError(f"cannot clear {sorted(unknown)}; one of {', '.join(CLEARABLE)}")
    params: dict[str, Any] = {
        "name": name, "paused": paused, "max_running": max_running, "rate_limit": rate_limit,
        "rate_period": rate_period, "max_depth": max_depth, "retention": retention,
        "dead_retention": dead_retention, "clear": list(clear),
    }  # fmt: skip
    (row,) = yield Statement(query("queue_upsert"), params, rows="dict")
    if paused is False:
        yield Statement(query("queue_wake"), {"name": name})
    return QueueSettings(**row)


def list_queues() -> Operation[list[QueueSettings]]:
    rows = yield Statement(query("queue_list"), rows="dict")
    return [QueueSettings(**row) for row in rows]
