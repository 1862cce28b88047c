"""A claimed job as the worker holds it, and the outcome it hands the completer."""

from __future__ import annotations

from json import loads
from typing import Any

# (id, lease token, status, result JSON, retry delay, last error, error entry JSON):
# one row of the `complete` query. A plain tuple: built once per job, cheap.
Outcome = tuple[int, str, str, "str | None", "float | None", "str | None", "str | None"]


class Claimed:
    """One leased job: the columns the `claim` query returns, plus run state."""

    __slots__ = (
        "args",
        "attempts",
        "deadline",
        "id",
        "kwargs",
        "lease",
        "max_attempts",
        "meta",
        "queue",
        "started",
        "t0",
        "task",
        "token",
    )

    def __init__(self, row: tuple[Any, ...], lease: float, token: str) -> None:
        # args, kwargs and meta arrive as JSON text (see lease_candidates); the
        # trailing priority and run_at are for the claim bounds (_bounds.py).
        head = row[:8]
        self.id, self.queue, self.task, args, kwargs, self.attempts, self.max_attempts, meta = head
        self.args = [] if args == "[]" else loads(args)
        self.kwargs = {} if kwargs == "{}" else loads(kwargs)
        self.meta = {} if meta == "{}" else loads(meta)
        self.token = token
        self.lease = lease
        self.started = False
        self.t0 = 0.0
        self.deadline = 0.0  # monotonic time the timeout expires; 0: no timeout

    def __repr__(self) -> str:
        return f"<Claimed job={self.id} task={self.task} attempt={self.attempts}>"
