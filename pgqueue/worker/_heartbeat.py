"""The heartbeat: renews the leases of held jobs and the worker's own row.

It runs on a thread of its own with a connection of its own, so neither a
CPU-bound async handler (which starves the event loop) nor a busy claim
connection can delay it. Each beat is one ``heartbeat`` statement for every
job the worker holds (running, or finished but not yet recorded) and one
``worker_heartbeat``. Jobs the statement no longer returns have lost their
lease (rescued after a stall): they are reported once through ``on_lost``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import psycopg

from pgqueue._sql import query
from pgqueue.worker._connect import first_line
from pgqueue.worker._log import log

if TYPE_CHECKING:
    from pgqueue._db import Database

Held = tuple[int, str, float]  # job id, lease token, lease seconds


class Heartbeat:
    """Periodic lease renewal; ``start`` does not block, ``stop`` is idempotent."""

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
        self._database = database
        self.worker_id = worker_id
        self._registration = {
            "id": worker_id,
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "queues": list(queues),
            "concurrency": concurrency,
        }
        self.interval = interval
        self._held = held
        self._on_lost = on_lost
        self._on_cancel = on_cancel
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self._registered = False
        self._lost: set[int] = set()
        self.beats = 0

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="pgqueue-heartbeat", daemon=True)
            self._thread.start()

    def stop(self, deregister: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if deregister and self._registered:
            with contextlib.suppress(psycopg.Error):
                self._connection().execute(query("worker_deregister"), {"id": self.worker_id})
            self._registered = False
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = self._database.connect()
        return self._conn

    def _run(self) -> None:
        while True:
            self.beat()
            if self._stop.wait(self.interval):
                return

    def beat(self) -> None:
        """One renewal (also called directly by tests)."""
        try:
            conn = self._connection()
            if not self._registered:
                conn.execute(query("worker_register"), self._registration)
                self._registered = True
            else:
                conn.execute(query("worker_heartbeat"), {"id": self.worker_id})
            held = self._held()
            if held:
                ids, tokens, leases = (list(col) for col in zip(*held, strict=True))
                rows = conn.execute(
                    query("heartbeat"),
                    {"ids": ids, "tokens": tokens, "leases": leases},
                    prepare=False,  # see _completer.UNPREPARED
                ).fetchall()
                # Jobs recorded by the completer while this ran are no longer
                # `running`: not lost, just done. Only those still held count.
                still = {h[0] for h in self._held()}
                self._check(ids, rows, still)
            self.beats += 1
        except psycopg.Error as exc:
            log(logging.WARNING, "heartbeat_failed", worker=self.worker_id, error=first_line(exc))
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.close()
                self._conn = None

    def _check(self, ids: list[int], rows: list[tuple[Any, ...]], still: set[int]) -> None:
        alive = {row[0] for row in rows}
        lost = [i for i in ids if i not in alive and i in still and i not in self._lost]
        if lost:
            self._lost.update(lost)
            self._on_lost(lost)
        cancel = [row[0] for row in rows if row[1]]
        if cancel:
            self._on_cancel(cancel)
        self._lost.intersection_update(ids)
