"""What every maintenance loop shares: a thread, a connection, start/stop."""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import TYPE_CHECKING, Any

import psycopg

if TYPE_CHECKING:
    from pgqueue._db import Database


class MaintenanceLoop:
    """Calls ``run_once()`` every ``interval`` seconds on a daemon thread.

    ``start()`` returns at once; ``stop()`` waits for the current pass and is
    safe to call twice or before ``start()``. A database error is logged and
    the connection reopened on the next pass.
    """

    name = "maintenance"

    def __init__(self, database: Database, interval: float) -> None:
        if interval <= 0:
            raise ValueError(f"{self.name} interval must be > 0")
        self._database = database
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self.logger = logging.getLogger(f"pgqueue.{self.name}")

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name=f"pgqueue-{self.name}", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._close()

    def run_once(self) -> int:
        raise NotImplementedError

    def _run(self) -> None:
        # A first pass at start: what a crashed predecessor left is handled at once.
        while not self._stop.is_set():
            try:
                self.run_once()
            except psycopg.Error as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                self.logger.warning("event=%s_failed error=%r", self.name, first)
                self._close()
            if self._stop.wait(self.interval):
                break

    def connection(self) -> psycopg.Connection[Any]:
        """This loop's own autocommit connection, (re)opened on demand."""
        if self._conn is None or self._conn.closed:
            self._conn = self._database.connect()
        return self._conn

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
