"""The heartbeat: renews the leases of held jobs and the worker's own row.

It runs on a thread of its own with a connection of its own, so neither a
CPU-bound async handler (which starves the event loop) nor a busy claim
connection can delay it. Each beat is one ``heartbeat`` statement for every
job the worker holds (running, or finished but not yet recorded) and one
``worker_heartbeat``. Jobs the statement no longer returns, and whose lease
token changed (rescued after a stall, claimed again), have lost their lease:
they are reported once through ``on_lost``; jobs the completer just recorded
keep their token and are not. A failed beat (``heartbeat_failed``) is retried
after a backoff of at most a second, not a whole interval.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import psycopg

from pgqueue._sql import query
from pgqueue.maintenance._service import Service

if TYPE_CHECKING:
    from pgqueue._db import Database

Held = tuple[int, str, float]  # job id, lease token, lease seconds


class Heartbeat(Service):
    """Periodic lease renewal (a :class:`Service`): ``start`` does not block,
    ``stop(timeout=None)`` is idempotent and removes the worker's row."""

    name = "heartbeat"
    logger_name = "pgqueue.worker"

    def __init__(
        self,
        database: Database,
        *,
        worker_id: str,
        queues: Sequence[str],
        concurrency: int,
        interval: float,
        held: Callable[[], list[Held]],
        on_lost: Callable[[list[int]], None],
        on_cancel: Callable[[list[int]], None],
    ) -> None:
        super().__init__(database, interval)
        self.worker_id = worker_id
        self._registration = {
            "id": worker_id,
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "queues": list(queues),
            "concurrency": concurrency,
        }
        self._held = held
        self._on_lost = on_lost
        self._on_cancel = on_cancel
        self._registered = False
        self._lost: set[int] = set()
        self.beats = 0

    def loop_pass(self) -> None:
        self.beat()

    def on_exit(self) -> None:
        if self._registered:
            self._registered = False
            with contextlib.suppress(psycopg.Error):
                self.db.run(lambda c: c.execute(query("worker_deregister"), {"id": self.worker_id}))

    def beat(self) -> None:
        """One renewal (the loop's pass; tests call it directly). Raises database errors."""
        self.db.run(self._beat)
        self.beats += 1

    def _beat(self, conn: psycopg.Connection[Any]) -> None:
        # Register on the first beat, and again if the row is gone (a rescuer pruned
        # it after a long outage): operators must keep seeing a live worker.
        if (
            not self._registered
            or not conn.execute(query("worker_heartbeat"), {"id": self.worker_id}).rowcount
        ):
            conn.execute(query("worker_register"), self._registration)
            self._registered = True
        held = self._held()
        if not held:
            return
        # Sorted by id, as the completer's batches are: one lock order, no deadlock.
        ids, tokens, leases = (list(col) for col in zip(*sorted(held), strict=True))
        rows = conn.execute(
            query("heartbeat"),
            {"ids": ids, "tokens": tokens, "leases": leases},
            prepare=False,  # see _completer.UNPREPARED
        ).fetchall()
        cancel = [row[0] for row in rows if row[1]]
        if cancel:
            self._on_cancel(cancel)
        alive = {row[0] for row in rows}
        candidates = [h for h in held if h[0] not in alive and h[0] not in self._lost]
        if candidates:
            self._report_lost(conn, candidates)
        self._lost.intersection_update(ids)

    def _report_lost(self, conn: psycopg.Connection[Any], candidates: list[Held]) -> None:
        # Not renewed: lost, or just recorded by the completer (it keeps the lease
        # token). A statement of its own sees every commit the renewal saw, so only
        # jobs whose token changed (rescued, re-claimed) or that vanished count;
        # and only those still held (shutdown releases its jobs first).
        gone = {row[0] for row in conn.execute(
            query("leases_gone"),
            {"ids": [h[0] for h in candidates], "tokens": [h[1] for h in candidates]},
        ).fetchall()}  # fmt: skip
        still = {h[0] for h in self._held()}
        lost = [h[0] for h in candidates if h[0] in gone and h[0] in still]
        if lost:
            self._lost.update(lost)
            self._on_lost(lost)
