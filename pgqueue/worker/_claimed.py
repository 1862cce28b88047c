"""A claimed job as the worker holds it, and the outcome it hands the completer."""

from __future__ import annotations

from json import loads
from typing import Any, NamedTuple


class Outcome(NamedTuple):
    """How one attempt ended: one row of the ``complete`` query, in its column order.

    A tuple (built once per job, cheap, and ``zip(*batch)`` gives the columns).
    """

    id: int
    token: str  # the lease token of the claim: fences the write
    status: str  # succeeded, failed (retry after ``delay``), dead, cancelled
    result: str | None  # the JSON text of the task's return value
    delay: float | None  # seconds before the retry (failed only)
    error: str | None  # the attempt's error line (becomes last_error)
    entry: str | None  # the JSON text of the entry appended to the job's errors


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
        "parent_results",
        "priority",
        "queue",
        "run_at",
        "started",
        "t0",
        "task",
        "token",
    )

    def __init__(self, row: tuple[Any, ...], lease: float, token: str) -> None:
        # args, kwargs and meta arrive as JSON text (see lease_candidates), then
        # pass_result and the parents' results; the trailing priority and run_at
        # are for the claim bounds (_bounds.py).
        head = row[:8]
        self.id, self.queue, self.task, args, kwargs, self.attempts, self.max_attempts, meta = head
        self.args = [] if args == "[]" else loads(args)
        self.kwargs = {} if kwargs == "{}" else loads(kwargs)
        self.meta = {} if meta == "{}" else loads(meta)
        self.parent_results: dict[int, Any] | None = None
        if row[8] is not None:  # pass_result: the job has parents
            self._take_results(row[8], row[9])
        self.priority, self.run_at = row[-2], row[-1]  # the claim's order (with queue, id)
        self.token = token
        self.lease = lease
        self.started = False
        self.t0 = 0.0
        self.deadline = 0.0  # monotonic time the timeout expires; 0: no timeout

    def _take_results(self, mode: str, parents: str | None) -> None:
        """The parents' results, by id; the first argument ``mode`` asks for
        ('previous': the one parent's result, 'list': every parent's, in order)."""
        pairs = loads(parents) if parents else []
        self.parent_results = {pid: result for pid, result in pairs}
        if mode == "previous" and pairs:
            self.args = [pairs[-1][1], *self.args]
        elif mode == "list":
            self.args = [[result for _, result in pairs], *self.args]

    def __repr__(self) -> str:
        return f"<Claimed job={self.id} task={self.task} attempt={self.attempts}>"
